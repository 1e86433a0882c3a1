"""Job store semantics: conditional create, legal transitions, in-flight lookup."""

from __future__ import annotations

import multiprocessing

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
    SQLiteJobStore,
)

ASSET, PART = "predictions", "2026-11-01|churn_xgb"


def name_for(attempt: int) -> str:
    return f"pred-job-a{attempt}"


@pytest.fixture
def store(tmp_path) -> SQLiteJobStore:
    return SQLiteJobStore(path=str(tmp_path / "jobs.sqlite3"))


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


def _race(path: str, barrier, results) -> None:
    store = SQLiteJobStore(path=path)
    barrier.wait()
    try:
        run_id = f"pid-{multiprocessing.current_process().pid}"
        record = store.create_attempt(ASSET, PART, name_for, run_id, "local")
        results.put(("created", record.attempt))
    except JobInFlightError:
        results.put(("refused", None))


def test_concurrent_submitters_in_separate_processes_create_exactly_one(tmp_path):
    path = str(tmp_path / "jobs.sqlite3")
    SQLiteJobStore(path=path).attempts(ASSET, PART)  # create the schema first
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(6)
    results = context.Queue()
    workers = [context.Process(target=_race, args=(path, barrier, results)) for _ in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    outcomes = [results.get(timeout=5) for _ in workers]
    assert sorted(o[0] for o in outcomes) == ["created"] + ["refused"] * 5
    assert [r.attempt for r in SQLiteJobStore(path=path).attempts(ASSET, PART)] == [1]
