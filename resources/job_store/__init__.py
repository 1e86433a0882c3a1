"""The job store: one record per (asset partition, attempt) of a processing job.

It answers "is a job already running for this partition?" before anything is
submitted, keeps the attempt history that retries and the UI read, knows which
process owns each run (so a record whose owner died can be told from one being
worked on), and admits jobs within the instance quota of their type. Its three
roles, and where each lives:

* attempts: ``records`` (``JobRecord``, statuses, the state machine, errors);
* run owners: ``records`` (``OwnerRecord``), liveness in ``resources.liveness``;
* instance admission: ``admission`` (the fairness rule, ``Reservation``) and
  ``waiting`` (``wait_for_instances``, the loop a step runs around it).

``protocols`` types each role (``AttemptStore``, ``OwnerStore``,
``AdmissionStore``); ``base`` holds the resource ``JobStore``, abstract, with its
settings; ``sqlite`` the embedded default ``SQLiteJobStore``; ``dynamodb`` the
``DynamoDBJobStore`` and its table (``python -m resources.job_store.dynamodb
--table NAME``), imported from there (importing this package loads no boto3).
"""

from resources.job_status import COMPLETED, FAILED, IN_PROGRESS, STOPPED, STOPPING, TERMINAL
from resources.job_store.base import JobStore
from resources.job_store.protocols import AdmissionStore, AttemptStore, OwnerStore
from resources.job_store.records import (
    ALL_STATUSES,
    IN_FLIGHT,
    PENDING,
    TRANSITIONS,
    AttemptExistsError,
    IllegalTransitionError,
    JobInFlightError,
    JobRecord,
    JobStoreError,
    OwnerRecord,
    check_reservation,
    check_transition,
)
from resources.job_store.sqlite import SQLiteJobStore

__all__ = [
    "ALL_STATUSES",
    "COMPLETED",
    "FAILED",
    "IN_FLIGHT",
    "IN_PROGRESS",
    "PENDING",
    "STOPPED",
    "STOPPING",
    "TERMINAL",
    "TRANSITIONS",
    "AdmissionStore",
    "AttemptExistsError",
    "AttemptStore",
    "IllegalTransitionError",
    "JobInFlightError",
    "JobRecord",
    "JobStore",
    "JobStoreError",
    "OwnerRecord",
    "OwnerStore",
    "SQLiteJobStore",
    "check_reservation",
    "check_transition",
]
