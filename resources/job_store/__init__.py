"""The job store: attempts of processing jobs, run owners and instance admission.

``sqlite`` holds the records, the ``JobStore`` interface and the embedded
``SQLiteJobStore``; ``dynamodb`` the ``DynamoDBJobStore``; ``admission`` the
instance admission rule.
"""

from resources.job_store.sqlite import (
    ALL_STATUSES,
    COMPLETED,
    FAILED,
    IN_FLIGHT,
    IN_PROGRESS,
    PENDING,
    STOPPED,
    STOPPING,
    TERMINAL,
    TRANSITIONS,
    AttemptExistsError,
    IllegalTransitionError,
    JobInFlightError,
    JobRecord,
    JobStore,
    JobStoreError,
    OwnerRecord,
    SQLiteJobStore,
    check_reservation,
    check_transition,
)

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
    "AttemptExistsError",
    "IllegalTransitionError",
    "JobInFlightError",
    "JobRecord",
    "JobStore",
    "JobStoreError",
    "OwnerRecord",
    "SQLiteJobStore",
    "check_reservation",
    "check_transition",
]
