"""Job store semantics: conditional create, legal transitions, in-flight lookup."""

from __future__ import annotations

import multiprocessing
import os
import time
import uuid

import pytest

from resources.dynamodb_job_store import DynamoDBJobStore, create_job_table
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
from resources.liveness import ProcessIdentity
from tests.aws import REGION

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
