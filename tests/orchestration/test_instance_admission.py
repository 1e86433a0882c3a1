"""Instance admission outside the stores: the setting, the waiting loop, the timeline
arithmetic, the failure classes, and a real pipeline run that waits for its instances."""

from __future__ import annotations

import dagster as dg
import pytest

from batch_assets.definitions import AWS_SETTINGS, resources_for
from batch_assets.jobs.failures import classify_job_failure
from resources.job_status import COMPLETED, FAILED
from resources.job_store import SQLiteJobStore
from resources.job_store.admission import (
    InstanceQuotaWaitExhausted,
    Reservation,
    parse_instance_quotas,
    peak_in_use,
)
from resources.job_store.waiting import wait_for_instances
from resources.processing import LocalProcessing

XL = "ml.m5.xlarge"


class Lines:
    """A logger that keeps what it is told (stands in for Dagster's step log)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, message: str) -> None:
        self.lines.append(message)

    warning = info


def test_quotas_are_parsed_and_a_bad_entry_names_the_variable_and_the_fix():
    assert parse_instance_quotas(" ml.m5.xlarge=20, ml.m5.large=10,", "V") == {
        "ml.m5.xlarge": 20, "ml.m5.large": 10}
    assert parse_instance_quotas("", "V") == {}
    for bad in ("ml.m5.xlarge", "ml.m5.xlarge=0", "m5.xlarge=3", "ml.m5.xlarge=two"):
        with pytest.raises(ValueError, match=r"^V: .* ml\.<family>\.<size>=<positive integer>"):
            parse_instance_quotas(bad, "V")
    with pytest.raises(ValueError, match="given twice"):
        parse_instance_quotas("ml.c5.xlarge=1,ml.c5.xlarge=2", "V")


def test_aws_mode_reads_the_quotas_from_batch_instance_quotas():
    environment = {"BATCH_INFERENCE_MODE": "aws",
                   **{name: "x" for name, (required, _) in AWS_SETTINGS.items() if required}}
    assert resources_for(environment)["processing"].instance_quotas == {}  # off by default
    quotas = resources_for({**environment, "BATCH_INSTANCE_QUOTAS": "ml.m5.xlarge=20"})
    assert quotas["processing"].instance_quotas == {XL: 20}
    with pytest.raises(dg.DagsterInvalidDefinitionError, match=r"^BATCH_INSTANCE_QUOTAS: "):
        resources_for({**environment, "BATCH_INSTANCE_QUOTAS": "ml.m5.xlarge:20"})
    with pytest.raises(ValueError, match="at least 1 instance per type"):
        LocalProcessing(instance_quotas={XL: 0})


def test_peak_in_use_counts_overlaps_only():
    def held(start: float, end: float | None, count: int) -> Reservation:
        return Reservation("j", "r", XL, count, 10, 1, start, start, start, end)

    timeline = [held(0, 2, 4), held(2, 3, 6), held(1, 2.5, 3), Reservation(
        "waiting", "r", XL, 9, 10, 2, 0, 0)]
    assert peak_in_use(timeline) == (9, 2)  # a release at 2 precedes the admission at 2
    assert peak_in_use([held(5, None, 2)], until=6) == (2, 5)


def test_waiting_logs_once_a_period_gives_up_and_withdraws_its_ticket(tmp_path):
    store = SQLiteJobStore(path=str(tmp_path / "jobs.sqlite3"))
    store.reserve_instances("holder", "run-1", XL, 8, 10)
    log = Lines()
    with pytest.raises(InstanceQuotaWaitExhausted, match=r"^quota wait exhausted: job waiter "
                                                         r"waited 1s .* for 4 ml\.m5\.xlarge"):
        wait_for_instances(store, "waiter", "run-2", XL, 4, 10, poll_seconds=0.02,
                           timeout_seconds=1.0, log=log, log_every_seconds=0.4)
    assert log.lines[0] == f"job waiter: waiting for 4 {XL} (quota 10, in use 8)"
    assert 2 <= len(log.lines) <= 3  # rate-limited: not one line per poll (about 50)
    assert store.reservation("waiter").release_reason == "withdrawn: stopped waiting"
    assert store.reserve_instances("small", "run-3", XL, 2, 10).admitted  # not held up


@pytest.mark.parametrize(("reason", "kind"), [
    ("submission failed: quota wait exhausted: job j waited 60s (quota_wait_seconds) for "
     "4 ml.m5.xlarge and they never fit", "quota wait exhausted"),
    ("submission failed: An error occurred (ResourceLimitExceeded) when calling the "
     "CreateProcessingJob operation", "quota wait exhausted"),
    ("submission failed: job j: the job asks for 7 ml.m5.xlarge but the instance quota of "
     "that type is 6, so it can never fit", "invalid request"),
])
def test_quota_failures_recorded_on_a_job_are_not_retried(reason, kind):
    failure = classify_job_failure(reason)
    assert (failure.kind, failure.retryable) == (kind, False)


def test_a_scoring_job_waits_for_its_instances_and_gives_them_back(pipeline):
    """churn_xgb scores on 2 ml.m5.xlarge: with a quota of 2 it runs and releases them
    on completion; while another job holds both it gives up after quota_wait_seconds,
    records its attempt as Failed (not retried) and leaves the holder's instances."""
    pipeline.processing = LocalProcessing(**{
        **pipeline.processing.model_dump(), "instance_quotas": {XL: 2},
        "quota_wait_seconds": 1.0})
    store = pipeline.job_store
    pipeline.score("2026-11-01", "churn_xgb")
    (done,) = pipeline.attempts("2026-11-01", "churn_xgb")
    reservation = store.reservation(done.job_name)
    assert done.status == COMPLETED and reservation.count == 2
    assert reservation.admitted_at <= done.started_at
    assert reservation.release_reason == f"job {COMPLETED}"

    store.reserve_instances("another-deployment-job", "other-run", XL, 2, 2)
    result = pipeline.score("2026-11-02", "churn_xgb", raise_on_error=False)
    assert not result.success
    (failed,) = pipeline.attempts("2026-11-02", "churn_xgb")
    assert failed.status == FAILED and "quota wait exhausted" in failed.failure_reason
    assert not classify_job_failure(failed.failure_reason).retryable
    assert store.reservation(failed.job_name).admitted_at is None
    assert store.reservation(failed.job_name).released_at is not None
    assert store.instances_in_use(XL) == 2  # the holder's, untouched


def test_the_next_run_releases_the_instances_of_a_dead_runs_unsubmitted_job(pipeline):
    """A run died after its job was admitted and before it submitted it: the next run
    of the partition closes that attempt as Failed (never submitted), which gives the
    instances back, so its own attempt fits instead of waiting for a dead run."""
    pipeline.processing = LocalProcessing(**{
        **pipeline.processing.model_dump(), "instance_quotas": {XL: 2},
        "quota_wait_seconds": 5.0})
    store, day = pipeline.job_store, "2026-11-01"
    store.create_attempt("score_customers", day, lambda a: f"orphan-a{a}", "run-that-died",
                         "local")
    assert store.reserve_instances("orphan-a1", "run-that-died", XL, 2, 2).admitted
    pipeline.score(day, "churn_xgb")
    orphan, second = pipeline.attempts(day, "churn_xgb")
    assert orphan.status == FAILED and "never submitted" in orphan.failure_reason
    assert store.reservation("orphan-a1").release_reason == f"job {FAILED}"
    assert second.status == COMPLETED
    assert store.reservation(second.job_name).admitted_at >= orphan.ended_at
    assert store.instances_in_use(XL) == 0
