"""``SQLiteJobStore``: the job store in one SQLite file (the embedded default).

Three tables: ``processing_jobs`` (the attempts), ``run_owners`` and
``instance_reservations``. The schema (and WAL mode, which the file keeps) is
set up by the first connection of a store object; every later connection only
sets what is per connection (row factory, busy timeout, autocommit).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import Field, PrivateAttr

from resources.job_status import TERMINAL
from resources.job_store.admission import Admission, Reservation, check_request, decide
from resources.job_store.base import JobStore
from resources.job_store.records import (
    IN_FLIGHT,
    PENDING,
    AttemptExistsError,
    IllegalTransitionError,
    JobInFlightError,
    JobRecord,
    JobStoreError,
    OwnerRecord,
    check_reservation,
    check_transition,
    transitioned,
)
from resources.liveness import ProcessIdentity

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
    # the path whose schema this store object has set up (None: not yet)
    _schema_path: str | None = PrivateAttr(default=None)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        path = Path(self.path)
        # a file deleted under a long-lived store (a sensor's) is made again, whole
        first = self._schema_path != self.path or not path.exists()
        if first:
            path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(path, timeout=self.busy_timeout_seconds,
                                     isolation_level=None)
        try:
            connection.row_factory = sqlite3.Row
            if first:
                connection.execute("PRAGMA journal_mode=WAL")  # kept by the file
                connection.executescript(_SCHEMA)
                self._schema_path = self.path
            yield connection
        finally:
            connection.close()

    @staticmethod
    def _record(row: sqlite3.Row) -> JobRecord:
        return JobRecord(**dict(row))

    def create_attempt(self, asset_key: str, partition_key: str,
                       job_name_for: Callable[[int], str], run_id: str,
                       backend: str) -> JobRecord:
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

    def transition(self, job_name: str, new_status: str, *, expected: str | None = None,
                   failure_reason: str | None = None) -> JobRecord:
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
                moved = transitioned(record, new_status, now, failure_reason)
                db.execute(
                    "UPDATE processing_jobs SET status=?, updated_at=?, started_at=?, "
                    "ended_at=?, failure_reason=COALESCE(?, failure_reason) "
                    "WHERE job_name=? AND status=?",
                    (new_status, now, moved.started_at, moved.ended_at, failure_reason,
                     job_name, record.status),
                )
                if new_status in TERMINAL:
                    self._release(db, job_name, f"job {new_status}", now)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return moved

    def get(self, job_name: str) -> JobRecord | None:
        with self._connect() as db:
            row = db.execute(
                f"SELECT {_COLUMNS} FROM processing_jobs WHERE job_name=?", (job_name,)
            ).fetchone()
        return self._record(row) if row else None

    def attempts(self, asset_key: str, partition_key: str) -> list[JobRecord]:
        with self._connect() as db:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM processing_jobs WHERE asset_key=? AND partition_key=? "
                "ORDER BY attempt", (asset_key, partition_key),
            ).fetchall()
        return [self._record(r) for r in rows]

    def list_in_flight(self) -> list[JobRecord]:
        with self._connect() as db:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM processing_jobs WHERE status IN (?, ?, ?) "
                "ORDER BY created_at", tuple(sorted(IN_FLIGHT)),
            ).fetchall()
        return [self._record(r) for r in rows]

    def take_over(self, job_name: str, run_id: str, expected_run_id: str) -> JobRecord:
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

    def register_owner(self, run_id: str, identity: ProcessIdentity) -> OwnerRecord:
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

    def heartbeat(self, run_id: str) -> None:
        with self._connect() as db:
            db.execute("UPDATE run_owners SET heartbeat_at=? WHERE run_id=?",
                       (time.time(), run_id))

    def owner(self, run_id: str) -> OwnerRecord | None:
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

    def reserve_instances(self, job_name: str, run_id: str, instance_type: str, count: int,
                          quota: int) -> Admission:
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

    def release_instances(self, job_name: str, reason: str = "released"
                          ) -> Reservation | None:
        with self._connect() as db:
            self._release(db, job_name, reason, time.time())
        return self.reservation(job_name)

    def instances_in_use(self, instance_type: str) -> int:
        with self._connect() as db:
            return self._in_use(db, instance_type)

    def reservation(self, job_name: str) -> Reservation | None:
        with self._connect() as db:
            return self._reservation(db.execute(
                f"SELECT {_RESERVATION_COLUMNS} FROM instance_reservations WHERE job_name=?",
                (job_name,)).fetchone())

    def reservations(self, instance_type: str, active_only: bool = False
                     ) -> list[Reservation]:
        active = " AND released_at IS NULL" if active_only else ""
        with self._connect() as db:
            rows = db.execute(
                f"SELECT {_RESERVATION_COLUMNS} FROM instance_reservations "
                f"WHERE instance_type=?{active} ORDER BY ticket", (instance_type,)).fetchall()
        return [self._reservation(r) for r in rows]
