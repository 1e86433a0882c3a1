"""The job store's records and the state machine of a job's status.

A ``JobRecord`` is one (asset partition, attempt) of a processing job; its
status is SageMaker's job status (``resources.job_status``), or ``PENDING``
before the backend has the job. ``TRANSITIONS`` says which status may follow
which; ``check_transition`` enforces it for both stores. An ``OwnerRecord`` is
the process that runs a Dagster run's steps (host, pid, process start,
heartbeat: see ``resources.liveness``), so that anyone can tell a record whose
owner died from one that is being worked on.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from resources.job_status import COMPLETED, FAILED, IN_PROGRESS, STOPPED, STOPPING, TERMINAL
from resources.job_store.admission import (
    Reservation,
    ReservationMismatchError,
    ReservationReleasedError,
)
from resources.liveness import ProcessIdentity

# a record's status is SageMaker's job status, or this one before the backend has it
PENDING = "Pending"  # recorded, not yet accepted by the backend

IN_FLIGHT = frozenset({PENDING, IN_PROGRESS, STOPPING})
ALL_STATUSES = IN_FLIGHT | TERMINAL

# status -> statuses it may move to. Terminal statuses never change again.
TRANSITIONS: dict[str, frozenset[str]] = {
    PENDING: frozenset({IN_PROGRESS, COMPLETED, FAILED, STOPPING, STOPPED}),
    IN_PROGRESS: frozenset({STOPPING, COMPLETED, FAILED, STOPPED}),
    STOPPING: frozenset({STOPPED, COMPLETED, FAILED}),
    COMPLETED: frozenset(),
    FAILED: frozenset(),
    STOPPED: frozenset(),
}


class JobStoreError(Exception):
    """Base of job store errors."""


class JobInFlightError(JobStoreError):
    """Another attempt of the same partition is still in flight."""

    def __init__(self, existing: JobRecord) -> None:
        super().__init__(
            f"attempt {existing.attempt} of {existing.asset_key}[{existing.partition_key}] "
            f"(job {existing.job_name}) is still {existing.status}"
        )
        self.existing = existing


class AttemptExistsError(JobStoreError):
    """The attempt number was taken by a concurrent submitter."""


class IllegalTransitionError(JobStoreError):
    """A status change that the state machine forbids, or a stale expected status."""


@dataclass(frozen=True)
class JobRecord:
    asset_key: str
    partition_key: str
    attempt: int
    job_name: str
    status: str
    run_id: str
    backend: str
    created_at: float
    updated_at: float
    started_at: float | None = None
    ended_at: float | None = None
    failure_reason: str | None = None

    @property
    def in_flight(self) -> bool:
        return self.status in IN_FLIGHT


@dataclass(frozen=True)
class OwnerRecord:
    """The process that runs a Dagster run's steps, and when it last said it lives."""

    run_id: str
    host: str
    pid: int
    process_started_at: float
    heartbeat_at: float

    @property
    def identity(self) -> ProcessIdentity:
        return ProcessIdentity(self.host, self.pid, self.process_started_at)


def check_reservation(existing: Reservation, instance_type: str, count: int) -> None:
    """A job's second request must be its first one again, and not released."""
    if (existing.instance_type, existing.count) != (instance_type, count):
        raise ReservationMismatchError(
            f"job {existing.job_name} reserved {existing.count} {existing.instance_type} and "
            f"now asks for {count} {instance_type}; a job's instances do not change: "
            "record a new attempt")
    if existing.released_at is not None:
        raise ReservationReleasedError(
            f"the instances of job {existing.job_name} were released "
            f"({existing.release_reason}); record a new attempt to ask again")


def check_transition(record: JobRecord, new_status: str, expected: str | None) -> None:
    """Refuse (``IllegalTransitionError``) a move the state machine or ``expected`` forbid."""
    if new_status not in ALL_STATUSES:
        raise IllegalTransitionError(f"unknown status {new_status!r}")
    if expected is not None and record.status != expected:
        raise IllegalTransitionError(
            f"job {record.job_name} is {record.status}, expected {expected}"
        )
    if new_status not in TRANSITIONS[record.status]:
        raise IllegalTransitionError(
            f"job {record.job_name}: {record.status} -> {new_status} is not allowed"
        )


def transitioned(record: JobRecord, new_status: str, now: float,
                 failure_reason: str | None) -> JobRecord:
    """The record after a move ``check_transition`` allowed, made at ``now``: started
    the first time it is InProgress, ended when terminal, its failure reason kept
    unless a new one is given."""
    started = record.started_at
    if new_status == IN_PROGRESS and started is None:
        started = now
    ended = now if new_status in TERMINAL else record.ended_at
    return replace(record, status=new_status, updated_at=now, started_at=started,
                   ended_at=ended, failure_reason=failure_reason or record.failure_reason)
