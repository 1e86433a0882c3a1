"""Job store semantics: conditional create, legal transitions, in-flight lookup."""

from __future__ import annotations

import logging
import multiprocessing
import os
import random
import sqlite3
import time
import uuid

import pytest

from resources.job_store import (
    COMPLETED,
    FAILED,
    IN_PROGRESS,
    PENDING,
    STOPPED,
    STOPPING,
    AttemptExistsError,
    IllegalTransitionError,
    JobInFlightError,
    JobStore,
    SQLiteJobStore,
)
from resources.job_store.admission import (
    Admission,
    RequestExceedsQuotaError,
    ReservationMismatchError,
    ReservationReleasedError,
    peak_in_use,
)
from resources.job_store.dynamodb import DynamoDBJobStore, create_job_table
from resources.job_store.waiting import wait_for_instances
from resources.liveness import ProcessIdentity
from tests.support.aws import REGION

ASSET, PART = "predictions", "2026-11-01|churn_xgb"


def name_for(attempt: int) -> str:
    return f"pred-job-a{attempt}"


@pytest.fixture(params=["sqlite", "dynamodb"])
def store(request, tmp_path) -> JobStore:
    """Every test here is a contract test: it runs against both job stores."""
    if request.param == "sqlite":
        return SQLiteJobStore(path=str(tmp_path / "jobs.sqlite3"))
    import boto3

    endpoint = request.getfixturevalue("moto_endpoint")
    table = f"jobs-{uuid.uuid4().hex[:12]}"
    create_job_table(table, boto3.client("dynamodb", endpoint_url=endpoint))
    return DynamoDBJobStore(table_name=table, endpoint_url=endpoint, region_name=REGION)


def test_create_records_pending_attempt_one(store):
    record = store.create_attempt(ASSET, PART, name_for, "run-1", "local")
    assert (record.attempt, record.status, record.job_name) == (1, PENDING, "pred-job-a1")
    assert store.get("pred-job-a1") == record
    assert store.in_flight(ASSET, PART) == record


def test_second_create_is_refused_while_first_is_in_flight(store):
    first = store.create_attempt(ASSET, PART, name_for, "run-1", "local")
    store.transition(first.job_name, IN_PROGRESS)
    with pytest.raises(JobInFlightError) as error:
        store.create_attempt(ASSET, PART, name_for, "run-2", "local")
    assert error.value.existing.job_name == first.job_name
    assert [r.attempt for r in store.attempts(ASSET, PART)] == [1]


def test_next_attempt_after_terminal_status(store):
    first = store.create_attempt(ASSET, PART, name_for, "run-1", "local")
    store.transition(first.job_name, IN_PROGRESS)
    failed = store.transition(first.job_name, FAILED, failure_reason="AlgorithmError: boom")
    assert failed.failure_reason == "AlgorithmError: boom" and failed.ended_at is not None
    assert store.in_flight(ASSET, PART) is None
    second = store.create_attempt(ASSET, PART, name_for, "run-2", "local")
    assert second.attempt == 2 and second.job_name == "pred-job-a2"
    assert [r.status for r in store.attempts(ASSET, PART)] == [FAILED, PENDING]


def test_partitions_are_independent(store):
    store.create_attempt(ASSET, PART, name_for, "run-1", "local")
    other = store.create_attempt(ASSET, "2026-11-02|churn_xgb", lambda a: f"other-a{a}", "r",
                                 "local")
    assert other.attempt == 1
    assert {r.job_name for r in store.list_in_flight()} == {"pred-job-a1", "other-a1"}


def test_duplicate_job_name_is_refused(store):
    store.create_attempt(ASSET, PART, name_for, "run-1", "local")
    with pytest.raises(AttemptExistsError):
        store.create_attempt(ASSET, "another-partition", name_for, "run-2", "local")


@pytest.mark.parametrize(
    ("path", "illegal"),
    [
        ([IN_PROGRESS, COMPLETED], IN_PROGRESS),  # terminal statuses never change
        ([IN_PROGRESS, FAILED], COMPLETED),
        ([STOPPING, STOPPED], IN_PROGRESS),
        ([STOPPING], PENDING),  # no way back to Pending
        ([], "Exploded"),  # unknown status
    ],
)
def test_illegal_transitions_are_refused(store, path, illegal):
    record = store.create_attempt(ASSET, PART, name_for, "run-1", "local")
    for status in path:
        store.transition(record.job_name, status)
    with pytest.raises(IllegalTransitionError):
        store.transition(record.job_name, illegal)
    assert store.get(record.job_name).status == (path[-1] if path else PENDING)


def test_expected_status_guards_against_stale_writers(store):
    record = store.create_attempt(ASSET, PART, name_for, "run-1", "local")
    store.transition(record.job_name, IN_PROGRESS, expected=PENDING)
    with pytest.raises(IllegalTransitionError, match="expected Pending"):
        store.transition(record.job_name, STOPPING, expected=PENDING)
    assert store.get(record.job_name).status == IN_PROGRESS


def _race(store_class, config: dict, environment: dict, barrier, results) -> None:
    os.environ.update(environment)
    store = store_class(**config)
    store.attempts(ASSET, "warm-up")  # connect before the race starts
    barrier.wait()
    try:
        run_id = f"pid-{multiprocessing.current_process().pid}"
        record = store.create_attempt(ASSET, PART, name_for, run_id, "local")
        results.put(("created", record.attempt))
    except (JobInFlightError, AttemptExistsError):
        results.put(("refused", None))


def test_concurrent_submitters_in_separate_processes_create_exactly_one(store):
    store.attempts(ASSET, PART)  # create the schema first
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(6)
    results = context.Queue()
    environment = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
    args = (type(store), store.model_dump(), environment, barrier, results)
    workers = [context.Process(target=_race, args=args) for _ in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    outcomes = [results.get(timeout=5) for _ in workers]
    assert sorted(o[0] for o in outcomes) == ["created"] + ["refused"] * 5
    assert [r.attempt for r in store.attempts(ASSET, PART)] == [1]


def test_owner_record_is_kept_and_heartbeat_renewed(store):
    assert store.owner("run-1") is None
    identity = ProcessIdentity("host-a", 4242, 1_700_000_000.0)
    registered = store.register_owner("run-1", identity)
    assert store.owner("run-1") == registered and registered.identity == identity
    time.sleep(0.05)
    store.heartbeat("run-1")
    assert store.owner("run-1").heartbeat_at > registered.heartbeat_at
    moved = ProcessIdentity("host-b", 7, 1_700_000_100.0)
    store.register_owner("run-1", moved)  # a run resumed elsewhere replaces its owner
    assert store.owner("run-1").identity == moved


def test_take_over_moves_an_in_flight_job_to_the_new_run_once(store):
    record = store.create_attempt(ASSET, PART, name_for, "dead-run", "local")
    store.transition(record.job_name, IN_PROGRESS)
    taken = store.take_over(record.job_name, "run-2", "dead-run")
    assert (taken.run_id, taken.status) == ("run-2", IN_PROGRESS)
    with pytest.raises(IllegalTransitionError):  # a second adopter lost the race
        store.take_over(record.job_name, "run-3", "dead-run")
    store.transition(record.job_name, COMPLETED)
    with pytest.raises(IllegalTransitionError):  # an ended job is nobody's to take
        store.take_over(record.job_name, "run-3", "run-2")
    assert store.get(record.job_name).run_id == "run-2"


def test_the_job_store_interface_is_abstract():
    """Every method but ``in_flight`` is abstract: a store that lacks one cannot be made
    (a TypeError at construction, not a NotImplementedError at its first call)."""
    assert JobStore.__abstractmethods__ == {
        "create_attempt", "transition", "get", "attempts", "list_in_flight", "take_over",
        "register_owner", "heartbeat", "owner", "reserve_instances", "release_instances",
        "instances_in_use", "reservation", "reservations"}
    with pytest.raises(TypeError, match="abstract"):
        JobStore()
    all_but_heartbeat = {name: getattr(SQLiteJobStore, name)
                         for name in JobStore.__abstractmethods__ - {"heartbeat"}}
    without_heartbeat = type("WithoutHeartbeat", (JobStore,), all_but_heartbeat)
    with pytest.raises(TypeError, match="heartbeat"):
        without_heartbeat()


def test_sqlite_schema_is_set_up_once_per_store_not_per_call(tmp_path, monkeypatch):
    """Every call opens a connection (heartbeats and polls too), but only a store's
    first one runs the schema script and sets WAL mode, which the file keeps."""
    statements: list[str] = []
    opened: list[str] = []
    connect = sqlite3.connect

    def traced(*args, **kwargs):
        connection = connect(*args, **kwargs)
        connection.set_trace_callback(statements.append)
        opened.append(str(args[0]))
        return connection

    monkeypatch.setattr(sqlite3, "connect", traced)
    path = tmp_path / "jobs.sqlite3"
    store = SQLiteJobStore(path=str(path))
    record = store.create_attempt(ASSET, PART, name_for, "run-1", "local")
    store.register_owner("run-1", ProcessIdentity("host-a", 4242, 1_700_000_000.0))
    for _ in range(3):
        store.heartbeat("run-1")
    store.transition(record.job_name, IN_PROGRESS)
    store.reserve_instances(record.job_name, "run-1", "ml.m5.large", 1, 4)
    assert store.get(record.job_name).status == IN_PROGRESS

    def count(text: str) -> int:
        return sum(text in statement for statement in statements)

    assert len(opened) == 8  # one connection per call
    assert count("CREATE TABLE IF NOT EXISTS processing_jobs") == 1
    assert count("PRAGMA journal_mode=WAL") == 1
    assert SQLiteJobStore(path=str(path)).owner("run-1") is not None  # another store object
    assert count("CREATE TABLE IF NOT EXISTS processing_jobs") == 2  # sets up its own once
    with connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"



def test_a_sqlite_file_deleted_under_a_live_store_is_made_again(tmp_path):
    """A sensor's store lives as long as the daemon; ``make clean`` under it must not
    leave it writing to a file without tables."""
    path = tmp_path / "data" / "jobs.sqlite3"
    store = SQLiteJobStore(path=str(path))
    store.create_attempt(ASSET, PART, name_for, "run-1", "local")
    for leftover in path.parent.iterdir():  # the database and its WAL files
        leftover.unlink()
    path.parent.rmdir()
    record = store.create_attempt(ASSET, PART, name_for, "run-2", "local")
    assert (record.attempt, store.get(record.job_name).run_id) == (1, "run-2")


# --- instance admission (resources.job_store.admission) -----------------------------

XL = "ml.m5.xlarge"


def test_admission_admits_what_fits_and_queues_the_rest_in_order(store):
    assert store.reserve_instances("job-a", "run-1", XL, 6, 10) == Admission(
        True, 6, 0, XL, 6, 10, 0)
    waiting = store.reserve_instances("job-b", "run-2", XL, 6, 10)
    assert (waiting.admitted, waiting.in_use, waiting.ahead) == (False, 6, 0)
    assert waiting.waiting_message() == f"waiting for 6 {XL} (quota 10, in use 6)"
    # one instance is free, but job-b is older and waits for it: job-c may not take it
    behind = store.reserve_instances("job-c", "run-3", XL, 1, 10)
    assert (behind.admitted, behind.ahead, behind.ahead_instances) == (False, 1, 6)
    assert store.instances_in_use(XL) == 6
    assert store.reserve_instances("job-a", "run-1", XL, 6, 10).admitted  # asked again
    store.release_instances("job-a")
    assert store.instances_in_use(XL) == 0
    assert store.reserve_instances("job-b", "run-2", XL, 6, 10).admitted
    assert store.reserve_instances("job-c", "run-3", XL, 1, 10).in_use == 7
    assert store.instances_in_use("ml.m5.large") == 0  # types are separate pools
    timeline = store.reservations(XL)
    assert [r.job_name for r in timeline] == ["job-a", "job-b", "job-c"]
    assert [r.ticket for r in timeline] == sorted(r.ticket for r in timeline)
    a, b, c = timeline
    assert a.released_at <= b.admitted_at <= c.admitted_at and not b.released_at
    assert [r.job_name for r in store.reservations(XL, active_only=True)] == ["job-b", "job-c"]


def test_a_younger_request_passes_only_when_the_older_one_still_fits(store):
    store.reserve_instances("big-holder", "run-1", XL, 8, 10)
    assert not store.reserve_instances("older", "run-2", XL, 4, 10).admitted
    store.release_instances("big-holder")
    # "older" has not asked again yet; 5 more fit next to its 4, so "younger" goes first
    younger = store.reserve_instances("younger", "run-3", XL, 5, 10)
    assert (younger.admitted, younger.ahead, younger.in_use) == (True, 1, 5)
    # 2 more would not leave room for "older": refused although they fit right now
    assert not store.reserve_instances("youngest", "run-4", XL, 2, 10).admitted
    assert store.reserve_instances("older", "run-2", XL, 4, 10).in_use == 9


def test_a_request_larger_than_the_quota_fails_at_once(store):
    with pytest.raises(RequestExceedsQuotaError, match=f"7 {XL} .* quota of that type is 6, "
                                                       "so it can never fit"):
        store.reserve_instances("too-big", "run-1", XL, 7, 6)
    assert store.reservation("too-big") is None and store.reservations(XL) == []


def test_release_is_idempotent_and_a_released_job_cannot_ask_again(store):
    assert store.release_instances("never-reserved") is None
    store.reserve_instances("job-a", "run-1", XL, 3, 4)
    first = store.release_instances("job-a", "done")
    assert first.released_at is not None and first.release_reason == "done"
    assert store.release_instances("job-a", "again") == first  # nothing changes
    assert store.instances_in_use(XL) == 0
    with pytest.raises(ReservationReleasedError, match="record a new attempt"):
        store.reserve_instances("job-a", "run-1", XL, 3, 4)
    with pytest.raises(ReservationMismatchError):
        store.reserve_instances("job-a", "run-1", XL, 2, 4)
    store.reserve_instances("job-w", "run-2", XL, 4, 4)  # admitted: nothing else holds any
    assert not store.reserve_instances("job-x", "run-3", XL, 1, 4).admitted
    store.release_instances("job-x", "withdrawn")  # a waiting ticket is withdrawn
    assert store.instances_in_use(XL) == 4
    assert store.reservation("job-x").admitted_at is None


@pytest.mark.parametrize("ending", [[IN_PROGRESS, COMPLETED], [IN_PROGRESS, FAILED],
                                    [STOPPING, STOPPED], [FAILED]])
def test_a_terminal_status_releases_the_jobs_instances(store, ending):
    record = store.create_attempt(ASSET, PART, name_for, "run-1", "local")
    store.reserve_instances(record.job_name, "run-1", XL, 2, 4)
    for status in ending[:-1]:
        store.transition(record.job_name, status)
        assert store.instances_in_use(XL) == 2  # held while the job runs
    store.transition(record.job_name, ending[-1])
    released = store.reservation(record.job_name)
    assert released.release_reason == f"job {ending[-1]}"
    assert store.instances_in_use(XL) == 0


def test_a_waiting_ticket_not_renewed_within_the_lease_stops_blocking(store):
    store = type(store)(**{**store.model_dump(), "lease_seconds": 0.3})
    store.reserve_instances("holder", "run-1", XL, 2, 4)
    assert not store.reserve_instances("stalled", "run-2", XL, 4, 4).admitted
    assert store.reserve_instances("small", "run-3", XL, 1, 4).ahead == 1
    time.sleep(0.4)  # "stalled" did not ask again: its owner is gone or stuck
    small = store.reserve_instances("small", "run-3", XL, 1, 4)
    assert (small.admitted, small.ahead) == (True, 0)
    assert store.reservation("stalled").waiting  # kept, and back in line if it asks


QUOTA = 10
REQUESTS = 20


def _reserve_hold_release(store_class, config: dict, environment: dict, barrier, job: str,
                          count: int, hold: float, poll: float, results) -> None:
    os.environ.update(environment)
    store = store_class(**config)
    barrier.wait()
    started = time.time()
    wait_for_instances(store, job, f"run-{job}", XL, count, QUOTA, poll_seconds=poll,
                       timeout_seconds=60, log=logging.getLogger("admission-test"))
    waited = time.time() - started
    time.sleep(hold)
    store.release_instances(job, "done")
    results.put((job, waited))


def assert_first_come_first_served(timeline: list, quota: int) -> int:
    """The fairness rule, read back from the timeline: at each admission, the instances
    held plus those of every older request still waiting plus its own fit the quota.
    Returns how many admissions overtook an older request (allowed when it still fit)."""
    overtaking = 0
    for r in timeline:
        at = r.admitted_at
        held = sum(o.count for o in timeline if o is not r and o.admitted_at < at < o.released_at)
        older_waiting = [o for o in timeline if o.ticket < r.ticket and o.admitted_at > at]
        assert held + sum(o.count for o in older_waiting) + r.count <= quota, (
            r, held, older_waiting)
        overtaking += bool(older_waiting)
    return overtaking


def test_concurrent_processes_never_exceed_the_quota_and_none_starves(store):
    """20 real processes ask for 1..6 instances against a quota of 10, hold them for a
    moment and release them; the timeline shows the quota was never exceeded, every
    request admitted, and no admission taking what an older waiting request needed."""
    chooser = random.Random(20261129)
    counts = [6, 1, 1, 5, 1, 6] + [chooser.randint(1, 6) for _ in range(REQUESTS - 6)]
    holds = [chooser.uniform(0.05, 0.2) for _ in range(REQUESTS)]
    poll = 0.02 if isinstance(store, SQLiteJobStore) else 0.5  # moto: one request at a time
    store.reservations(XL)  # create the schema first
    context = multiprocessing.get_context("fork")  # forked: no re-import per process
    barrier = context.Barrier(REQUESTS)
    results = context.Queue()
    environment = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
    workers = [context.Process(target=_reserve_hold_release, args=(
        type(store), store.model_dump(), environment, barrier, f"job-{i:02d}", counts[i],
        holds[i], poll, results)) for i in range(REQUESTS)]
    for worker in workers:
        worker.start()
    outcomes = dict(results.get(timeout=120) for _ in workers)
    for worker in workers:
        worker.join(10)
        assert worker.exitcode == 0
    timeline = store.reservations(XL)
    assert len(timeline) == REQUESTS == len(outcomes)
    assert all(r.admitted_at and r.released_at for r in timeline)  # every one admitted
    peak, _at = peak_in_use(timeline)
    assert counts.count(6) >= 2 and 6 < peak <= QUOTA
    assert store.instances_in_use(XL) == 0
    overtaking = assert_first_come_first_served(timeline, QUOTA)
    by_job = {r.job_name: r for r in timeline}
    waits = {job: by_job[job].admitted_at - by_job[job].requested_at for job in by_job}
    longest = max(waits, key=waits.get)
    span = max(r.released_at for r in timeline) - min(r.requested_at for r in timeline)
    print(f"\n{type(store).__name__}: peak {peak} of quota {QUOTA}; longest wait "
          f"{waits[longest]:.2f}s ({longest}, {by_job[longest].count} instances); "
          f"all {REQUESTS} admitted and released within {span:.2f}s; {overtaking} "
          "admission(s) overtook an older request that still fit")
