"""Job store: one record per (asset partition, attempt) of a processing job.

It answers "is a job already running for this partition?" before anything is
submitted, so two runs of the same partition (a retried run, a sensor tick and a
manual launch) never both start a job, and it keeps the attempt history that
retries and the UI read. ``SQLiteJobStore`` is the embedded default; the
DynamoDB store implements the same interface with conditional writes.

Every record names its owner run; the store also keeps one owner record per run
(host, pid, process start, heartbeat: see ``resources.liveness``) so that
anyone can tell a record whose owner died from one that is being worked on.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import dagster as dg
from pydantic import Field

from resources.job_status import COMPLETED, FAILED, IN_PROGRESS, STOPPED, STOPPING, TERMINAL
from resources.job_store.admission import (
    Admission,
    Reservation,
    ReservationMismatchError,
    ReservationReleasedError,
    check_request,
    decide,
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


class JobStore(dg.ConfigurableResource):
    """Interface of the job store (SQLite by default, DynamoDB on AWS)."""

    heartbeat_seconds: float = Field(
        default=10.0,
        description="How often a step renews the heartbeat of the run that owns its jobs.",
    )
    lease_seconds: float = Field(
        default=60.0,
        description="An owner run on another host whose heartbeat is older than this is "
        "dead, and its in-flight jobs are adopted by the next run (on this host a dead "
        "process is seen at once). Keep it several heartbeats long. It is also the lease "
        "of a request waiting for instances (instance_quotas): one not renewed this long "
        "stops holding up younger requests.",
    )
    run_workers_on_this_host: bool = Field(
        default=True,
        description="Dagster run workers run on this machine (dagster dev, the dagster "
        "CLI, one VM): a run whose worker process is gone is failed and its pool slot "
        "freed by the reaper sensor. Set false when run workers run in other containers "
        "(ECS, Kubernetes); then Dagster's run monitoring must fail runs that die before "
        "their step starts, and heartbeats judge the rest.",
    )

    def create_attempt(
        self, asset_key: str, partition_key: str, job_name_for: Callable[[int], str],
        run_id: str, backend: str,
    ) -> JobRecord:
        """Record the next attempt as Pending, unless one is in flight.

        ``job_name_for(attempt)`` names the job of the new attempt. Raises
        ``JobInFlightError`` when an attempt of the partition is in flight, and
        ``AttemptExistsError`` when a concurrent writer took the number.
        """
        raise NotImplementedError(type(self).__name__)

    def transition(
        self, job_name: str, new_status: str, *, expected: str | None = None,
        failure_reason: str | None = None,
    ) -> JobRecord:
        """Move a job to ``new_status`` if the state machine (and ``expected``) allow it."""
        raise NotImplementedError(type(self).__name__)

    def get(self, job_name: str) -> JobRecord | None:
        raise NotImplementedError(type(self).__name__)

    def attempts(self, asset_key: str, partition_key: str) -> list[JobRecord]:
        """Every attempt of a partition, oldest first."""
        raise NotImplementedError(type(self).__name__)

    def in_flight(self, asset_key: str, partition_key: str) -> JobRecord | None:
        found = [r for r in self.attempts(asset_key, partition_key) if r.in_flight]
        return found[-1] if found else None

    def list_in_flight(self) -> list[JobRecord]:
        raise NotImplementedError(type(self).__name__)

    def take_over(self, job_name: str, run_id: str, expected_run_id: str) -> JobRecord:
        """Make ``run_id`` the owner of an in-flight job still owned by ``expected_run_id``.

        Raises ``IllegalTransitionError`` when the job ended or another run took it.
        """
        raise NotImplementedError(type(self).__name__)

    def register_owner(self, run_id: str, identity: ProcessIdentity) -> OwnerRecord:
        """Record (or replace) the process that runs ``run_id``'s steps; heartbeat now."""
        raise NotImplementedError(type(self).__name__)

    def heartbeat(self, run_id: str) -> None:
        """Renew ``run_id``'s heartbeat."""
        raise NotImplementedError(type(self).__name__)

    def owner(self, run_id: str) -> OwnerRecord | None:
        raise NotImplementedError(type(self).__name__)

    # --- instance admission (see resources.job_store.admission) --------------------

    def reserve_instances(self, job_name: str, run_id: str, instance_type: str, count: int,
                          quota: int) -> Admission:
        """Ask for ``count`` instances of ``instance_type`` for ``job_name``; one atomic step.

        The first call queues the request (a ticket); every call renews the ticket
        and admits it if it fits by the fairness rule; a call for an admitted job
        answers admitted again. Raises ``RequestExceedsQuotaError`` when ``count``
        exceeds ``quota`` (it can never fit), ``ReservationReleasedError`` when the
        job's reservation was released meanwhile, ``ReservationMismatchError`` when
        the job first asked for another type or count.
        """
        raise NotImplementedError(type(self).__name__)

    def release_instances(self, job_name: str, reason: str = "released"
                          ) -> Reservation | None:
        """Give the job's instances (or its waiting ticket) back; idempotent.

        Returns the reservation as released (None if the job never reserved).
        Reaching a terminal status releases too, in the store's ``transition``.
        """
        raise NotImplementedError(type(self).__name__)

    def instances_in_use(self, instance_type: str) -> int:
        """Instances of the type held by admitted, unreleased reservations."""
        raise NotImplementedError(type(self).__name__)

    def reservation(self, job_name: str) -> Reservation | None:
        raise NotImplementedError(type(self).__name__)

    def reservations(self, instance_type: str, active_only: bool = False
                     ) -> list[Reservation]:
        """The type's reservations, oldest ticket first: the admission timeline (with
        ``active_only``: those waiting or held)."""
        raise NotImplementedError(type(self).__name__)


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


_SCHEMA = """
CREATE TABLE IF NOT EXISTS processing_jobs (
    asset_key TEXT NOT NULL,
    partition_key TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    job_name TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    run_id TEXT NOT NULL,
    backend TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    started_at REAL,
    ended_at REAL,
    failure_reason TEXT,
    PRIMARY KEY (asset_key, partition_key, attempt)
);
CREATE INDEX IF NOT EXISTS processing_jobs_status ON processing_jobs (status);
CREATE TABLE IF NOT EXISTS instance_reservations (
    ticket INTEGER PRIMARY KEY AUTOINCREMENT,
    job_name TEXT NOT NULL UNIQUE,
    run_id TEXT NOT NULL,
    instance_type TEXT NOT NULL,
    count INTEGER NOT NULL,
    quota INTEGER NOT NULL,
    requested_at REAL NOT NULL,
    renewed_at REAL NOT NULL,
    admitted_at REAL,
    released_at REAL,
    release_reason TEXT
);
CREATE INDEX IF NOT EXISTS instance_reservations_active
    ON instance_reservations (instance_type, released_at);
CREATE TABLE IF NOT EXISTS run_owners (
    run_id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    process_started_at REAL NOT NULL,
    heartbeat_at REAL NOT NULL
);
"""
_RESERVATION_COLUMNS = (
    "job_name, run_id, instance_type, count, quota, ticket, requested_at, renewed_at, "
    "admitted_at, released_at, release_reason"
)
_COLUMNS = (
    "asset_key, partition_key, attempt, job_name, status, run_id, backend, created_at, "
    "updated_at, started_at, ended_at, failure_reason"
)


class SQLiteJobStore(JobStore):
    """Job store in one SQLite file (the embedded default).

    Creation runs in an ``IMMEDIATE`` transaction (a write lock taken before the
    in-flight check), so the check and the insert are one atomic step across
    threads and processes; the primary key backs it up. Instance reservations
    (table ``instance_reservations``, ticket = autoincrement key) are decided and
    written in one such transaction too, and a terminal status releases the job's
    reservation in the transaction that records it.
    """

    path: str = Field(
        default=".data/jobs.sqlite3",
        description="SQLite file of the job store; created on first use.",
    )
    busy_timeout_seconds: float = Field(
        default=30.0, description="How long a writer waits for another writer's lock."
    )

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        path = Path(self.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(path, timeout=self.busy_timeout_seconds,
                                     isolation_level=None)
        try:
            connection.row_factory = sqlite3.Row
            connection.execute("PRAGMA journal_mode=WAL")
            connection.executescript(_SCHEMA)
            yield connection
        finally:
            connection.close()

    @staticmethod
    def _record(row: sqlite3.Row) -> JobRecord:
        return JobRecord(**dict(row))

    def create_attempt(self, asset_key, partition_key, job_name_for, run_id, backend):
        now = time.time()
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                rows = db.execute(
                    f"SELECT {_COLUMNS} FROM processing_jobs WHERE asset_key=? AND "
                    "partition_key=? ORDER BY attempt", (asset_key, partition_key),
                ).fetchall()
                records = [self._record(r) for r in rows]
                in_flight = [r for r in records if r.in_flight]
                if in_flight:
                    raise JobInFlightError(in_flight[-1])
                attempt = (records[-1].attempt if records else 0) + 1
                record = JobRecord(asset_key, partition_key, attempt, job_name_for(attempt),
                                   PENDING, run_id, backend, now, now)
                try:
                    db.execute(
                        f"INSERT INTO processing_jobs ({_COLUMNS}) VALUES "
                        "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (record.asset_key, record.partition_key, record.attempt,
                         record.job_name, record.status, record.run_id, record.backend,
                         record.created_at, record.updated_at, None, None, None),
                    )
                except sqlite3.IntegrityError as exc:
                    raise AttemptExistsError(
                        f"attempt {attempt} of {asset_key}[{partition_key}] or job "
                        f"{record.job_name} already exists"
                    ) from exc
                db.execute("COMMIT")
                return record
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def transition(self, job_name, new_status, *, expected=None, failure_reason=None):
        now = time.time()
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute(
                    f"SELECT {_COLUMNS} FROM processing_jobs WHERE job_name=?", (job_name,)
                ).fetchone()
                if row is None:
                    raise JobStoreError(f"no job named {job_name} in the job store")
                record = self._record(row)
                check_transition(record, new_status, expected)
                started = record.started_at
                if new_status == IN_PROGRESS and started is None:
                    started = now
                ended = now if new_status in TERMINAL else record.ended_at
                db.execute(
                    "UPDATE processing_jobs SET status=?, updated_at=?, started_at=?, "
                    "ended_at=?, failure_reason=COALESCE(?, failure_reason) "
                    "WHERE job_name=? AND status=?",
                    (new_status, now, started, ended, failure_reason, job_name, record.status),
                )
                if new_status in TERMINAL:
                    self._release(db, job_name, f"job {new_status}", now)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return replace(record, status=new_status, updated_at=now, started_at=started,
                       ended_at=ended, failure_reason=failure_reason or record.failure_reason)

    def get(self, job_name):
        with self._connect() as db:
            row = db.execute(
                f"SELECT {_COLUMNS} FROM processing_jobs WHERE job_name=?", (job_name,)
            ).fetchone()
        return self._record(row) if row else None

    def attempts(self, asset_key, partition_key):
        with self._connect() as db:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM processing_jobs WHERE asset_key=? AND partition_key=? "
                "ORDER BY attempt", (asset_key, partition_key),
            ).fetchall()
        return [self._record(r) for r in rows]

    def list_in_flight(self):
        with self._connect() as db:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM processing_jobs WHERE status IN (?, ?, ?) "
                "ORDER BY created_at", tuple(sorted(IN_FLIGHT)),
            ).fetchall()
        return [self._record(r) for r in rows]

    def take_over(self, job_name, run_id, expected_run_id):
        now = time.time()
        with self._connect() as db:
            changed = db.execute(
                "UPDATE processing_jobs SET run_id=?, updated_at=? WHERE job_name=? AND "
                "run_id=? AND status IN (?, ?, ?)",
                (run_id, now, job_name, expected_run_id, *sorted(IN_FLIGHT)),
            ).rowcount
        record = self.get(job_name)
        if not changed or record is None:
            raise IllegalTransitionError(
                f"job {job_name} is no longer in flight under run {expected_run_id} "
                f"(now {record.status + ' under run ' + record.run_id if record else 'gone'})"
            )
        return record

    def register_owner(self, run_id, identity):
        owner = OwnerRecord(run_id, identity.host, identity.pid, identity.started_at,
                            time.time())
        with self._connect() as db:
            db.execute(
                "INSERT OR REPLACE INTO run_owners (run_id, host, pid, process_started_at, "
                "heartbeat_at) VALUES (?, ?, ?, ?, ?)",
                (owner.run_id, owner.host, owner.pid, owner.process_started_at,
                 owner.heartbeat_at),
            )
        return owner

    def heartbeat(self, run_id):
        with self._connect() as db:
            db.execute("UPDATE run_owners SET heartbeat_at=? WHERE run_id=?",
                       (time.time(), run_id))

    def owner(self, run_id):
        with self._connect() as db:
            row = db.execute(
                "SELECT run_id, host, pid, process_started_at, heartbeat_at FROM run_owners "
                "WHERE run_id=?", (run_id,),
            ).fetchone()
        return OwnerRecord(**dict(row)) if row else None

    # --- instance admission ---------------------------------------------------------

    @staticmethod
    def _reservation(row: sqlite3.Row | None) -> Reservation | None:
        return Reservation(**dict(row)) if row else None

    def reserve_instances(self, job_name, run_id, instance_type, count, quota):
        check_request(instance_type, count, quota)
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                now = time.time()
                mine = self._reservation(db.execute(
                    f"SELECT {_RESERVATION_COLUMNS} FROM instance_reservations "
                    "WHERE job_name=?", (job_name,)).fetchone())
                if mine is None:
                    ticket = db.execute(
                        "INSERT INTO instance_reservations (job_name, run_id, instance_type, "
                        "count, quota, requested_at, renewed_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (job_name, run_id, instance_type, count, quota, now, now)).lastrowid
                    mine = Reservation(job_name, run_id, instance_type, count, quota, ticket,
                                       now, now)
                check_reservation(mine, instance_type, count)
                in_use = self._in_use(db, instance_type)
                if mine.admitted_at is not None:
                    db.execute("COMMIT")
                    return Admission(True, in_use, 0, instance_type, count, quota)
                waiting = [self._reservation(r) for r in db.execute(
                    f"SELECT {_RESERVATION_COLUMNS} FROM instance_reservations WHERE "
                    "instance_type=? AND released_at IS NULL AND admitted_at IS NULL "
                    "AND ticket<?", (instance_type, mine.ticket))]
                admission = decide(mine.ticket, count, quota, instance_type, in_use, waiting,
                                   now, self.lease_seconds)
                db.execute(
                    "UPDATE instance_reservations SET renewed_at=?, admitted_at=? "
                    "WHERE job_name=?", (now, now if admission.admitted else None, job_name))
                db.execute("COMMIT")
                return admission
            except BaseException:
                db.execute("ROLLBACK")
                raise

    @staticmethod
    def _in_use(db: sqlite3.Connection, instance_type: str) -> int:
        return db.execute(
            "SELECT COALESCE(SUM(count), 0) FROM instance_reservations WHERE instance_type=? "
            "AND released_at IS NULL AND admitted_at IS NOT NULL", (instance_type,),
        ).fetchone()[0]

    @staticmethod
    def _release(db: sqlite3.Connection, job_name: str, reason: str, now: float) -> None:
        db.execute(
            "UPDATE instance_reservations SET released_at=?, release_reason=? "
            "WHERE job_name=? AND released_at IS NULL", (now, reason, job_name))

    def release_instances(self, job_name, reason="released"):
        with self._connect() as db:
            self._release(db, job_name, reason, time.time())
        return self.reservation(job_name)

    def instances_in_use(self, instance_type):
        with self._connect() as db:
            return self._in_use(db, instance_type)

    def reservation(self, job_name):
        with self._connect() as db:
            return self._reservation(db.execute(
                f"SELECT {_RESERVATION_COLUMNS} FROM instance_reservations WHERE job_name=?",
                (job_name,)).fetchone())

    def reservations(self, instance_type, active_only=False):
        active = " AND released_at IS NULL" if active_only else ""
        with self._connect() as db:
            rows = db.execute(
                f"SELECT {_RESERVATION_COLUMNS} FROM instance_reservations "
                f"WHERE instance_type=?{active} ORDER BY ticket", (instance_type,)).fetchall()
        return [self._reservation(r) for r in rows]
