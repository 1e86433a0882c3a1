"""The reaper: a run whose worker was SIGKILLed is failed, its pool slot freed, and
the records of jobs nobody watches are brought in line with the backend."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from batch_assets.automation.reaper import reap
from batch_assets.jobs.orchestration import PROCESSING_POOL
from batch_assets.registry import load_registry
from resources.job_store import COMPLETED, FAILED, IN_PROGRESS, PENDING, SQLiteJobStore
from resources.liveness import this_process
from resources.processing import LocalProcessing
from resources.storage import LocalBucketStorage
from tests.orchestration.test_local_runner import request, wait_for

PROGRAMS = Path(__file__).parents[1] / "programs"
PROGRAM = str(PROGRAMS / "blocking_run.py")
LOG = logging.getLogger("test_reaper")
PARTITION = "2026-11-01|churn_xgb"


@pytest.fixture
def instance(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(
        "concurrency:\n  pools:\n    default_limit: 1\n    granularity: op\n"
        "telemetry:\n  enabled: false\n")
    instance = dg.DagsterInstance.from_config(str(home))
    yield instance
    instance.dispose()


def start_blocking_run(tmp_path, instance, store_path, job_name) -> subprocess.Popen:
    env = {**os.environ, "DAGSTER_HOME": instance.root_directory, "PYTHONWARNINGS": "ignore"}
    process = subprocess.Popen(
        [sys.executable, PROGRAM, store_path, "predictions", PARTITION, job_name],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tmp_path,
    )
    for line in process.stdout:
        if line.strip() == b"READY":
            return process
    raise AssertionError(f"blocking run did not start (exit {process.wait()})")


def claimed_runs(instance) -> set[str]:
    info = instance.event_log_storage.get_concurrency_info(PROCESSING_POOL)
    return {slot.run_id for slot in info.claimed_slots}


def test_killed_run_is_failed_its_slot_freed_and_its_unsubmitted_attempt_closed(
        tmp_path, instance):
    store = SQLiteJobStore(path=str(tmp_path / "jobs.sqlite3"))
    jobs = LocalProcessing(work_dir=str(tmp_path / "jobs")).jobs(
        LocalBucketStorage(root=str(tmp_path / "bucket")))
    registry = load_registry()
    process = start_blocking_run(tmp_path, instance, store.path, "pred-never-submitted")
    (run,) = instance.get_runs()
    assert run.status == dg.DagsterRunStatus.STARTED
    assert claimed_runs(instance) == {run.run_id}

    alive = reap(instance, store, jobs, registry, LOG)  # a live run is left alone
    assert not alive.failed_runs and not alive.reconciled_jobs
    assert store.get("pred-never-submitted").status == PENDING

    process.send_signal(signal.SIGKILL)
    process.wait(10)
    report = reap(instance, store, jobs, registry, LOG)
    assert list(report.failed_runs) == [run.run_id]
    assert "is gone" in report.failed_runs[run.run_id]
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
    assert claimed_runs(instance) == set()
    record = store.get("pred-never-submitted")
    assert record.status == FAILED and record.failure_reason.startswith("never submitted")
    assert report.reconciled_jobs == {"pred-never-submitted": FAILED}
    # not a partition run of the pipeline's assets: nothing to request again
    assert not report.rerun_requests and run.run_id in report.not_rerun
    assert not reap(instance, store, jobs, registry, LOG).failed_runs  # done once


def test_job_that_ends_while_its_owner_is_dead_is_recorded_as_it_ended(tmp_path, instance):
    """The dead owner's job keeps running: its record stays in flight until the job
    ends, then the next reap records the backend's status."""
    storage = LocalBucketStorage(root=str(tmp_path / "bucket"))
    for i in range(2):
        storage.write_bytes(f"data/d/dt=2026-11-01/part-{i}.parquet", b"x")
    storage.write_bytes("models/m/v1/model.json", b"{}")
    store = SQLiteJobStore(path=str(tmp_path / "jobs.sqlite3"))
    jobs = LocalProcessing(work_dir=str(tmp_path / "jobs"), stop_grace_seconds=1.0).jobs(storage)
    registry = load_registry()
    dead_owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    identity = this_process()
    store.register_owner("gone-run", identity.__class__(identity.host, dead_owner.pid,
                                                        identity.started_at))
    record = store.create_attempt("predictions", PARTITION, lambda _a: "job-left-behind",
                                  "gone-run", "local")
    jobs.client.create_processing_job(**request("job-left-behind", "report", 2))
    store.transition(record.job_name, IN_PROGRESS)

    reap(instance, store, jobs, registry, LOG)
    assert store.get(record.job_name).status == IN_PROGRESS  # its owner still lives

    dead_owner.kill()
    dead_owner.wait()
    wait_for(jobs.client, "job-left-behind", {"Completed"}, timeout=60)
    report = reap(instance, store, jobs, registry, LOG)
    assert report.reconciled_jobs == {"job-left-behind": COMPLETED}
    assert store.get(record.job_name).status == COMPLETED


def start_holder(tmp_path, store_path: str, partition: str, job_name: str, count: int,
                 quota: int) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, str(PROGRAMS / "admission_holder.py"), store_path,
         partition, job_name, str(count), str(quota)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tmp_path, text=True)
    line = process.stdout.readline().strip()
    assert line in ("ADMITTED", "WAITING"), f"{line} (exit {process.poll()})"
    return process, line


def test_killed_owners_give_their_instances_and_their_place_in_line_back(tmp_path, instance):
    """A SIGKILLed run that held instances, and one that waited for them, both hold up
    a live run; the reaper closes their never-submitted jobs, which releases both."""
    store = SQLiteJobStore(path=str(tmp_path / "jobs.sqlite3"))
    jobs = LocalProcessing(work_dir=str(tmp_path / "jobs")).jobs(
        LocalBucketStorage(root=str(tmp_path / "bucket")))
    registry = load_registry()
    xl = "ml.m5.xlarge"
    holder, holder_state = start_holder(tmp_path, store.path, "2026-11-01|a", "held-job", 3, 4)
    waiter, waiter_state = start_holder(tmp_path, store.path, "2026-11-01|b", "waiting-job",
                                        4, 4)
    assert (holder_state, waiter_state) == ("ADMITTED", "WAITING")
    store.register_owner("live-run", this_process())
    store.create_attempt("predictions", "2026-11-01|c", lambda _a: "live-job", "live-run",
                         "local")
    blocked = store.reserve_instances("live-job", "live-run", xl, 1, 4)
    assert (blocked.admitted, blocked.ahead, blocked.in_use) == (False, 1, 3)
    store.reserve_instances("no-record-job", "gone-run", xl, 1, 4)  # its record is gone

    alive = reap(instance, store, jobs, registry, LOG, instance_types=[xl])
    assert not alive.reconciled_jobs  # live owners keep theirs
    assert alive.released_reservations == {"no-record-job": "its job has no record"}
    assert store.instances_in_use(xl) == 3

    for process in (holder, waiter):
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    report = reap(instance, store, jobs, registry, LOG, instance_types=[xl])
    assert report.reconciled_jobs == {"held-job": FAILED, "waiting-job": FAILED}
    for job in ("held-job", "waiting-job"):
        assert store.reservation(job).release_reason == "job Failed"
    assert store.instances_in_use(xl) == 0
    admitted = store.reserve_instances("live-job", "live-run", xl, 1, 4)
    assert (admitted.admitted, admitted.in_use) == (True, 1)
    assert store.reservation("live-job").held  # the live run's instances were not touched
    assert not reap(instance, store, jobs, registry, LOG,
                    instance_types=[xl]).released_reservations


def test_the_partition_of_a_dead_run_is_found_for_backfill_runs_too():
    """Backfill runs of one day carry a one-day partition range, not a partition tag;
    the reaper requests their day again all the same."""
    from batch_assets.automation.reaper import run_partition

    def run(tags):
        return dg.DagsterRun(job_name="__ASSET_JOB", run_id="r", tags=tags)

    assert run_partition(run({"dagster/partition": "2026-11-01"})) == "2026-11-01"
    assert run_partition(run({"dagster/asset_partition_range_start": "2026-11-02",
                              "dagster/asset_partition_range_end": "2026-11-02"})) == "2026-11-02"
    assert run_partition(run({"dagster/asset_partition_range_start": "2026-11-02",
                              "dagster/asset_partition_range_end": "2026-11-05"})) is None
    assert run_partition(run({})) is None
