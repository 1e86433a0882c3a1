"""The fault suite: break things for real and assert recovery with no manual step.

Every scenario runs real ``dagster asset materialize`` processes against a real
Dagster instance and the local runner, kills or corrupts something, lets the
pipeline recover on its own (its retry policy, the orphan_reaper and retry
sensors: evaluated here exactly as the daemon evaluates them, or by a real
``dagster-daemon``), and then checks every key exactly once with predictions
equal to a clean run's.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batch_assets.automation.reaper import build_reaper_sensor
from batch_assets.planning.layout import data_prefix
from batch_assets.planning.scoring_groups import model_of, prediction_key
from batch_assets.registry import load_registry
from resources.job_store import COMPLETED, FAILED, IN_PROGRESS, PENDING
from tests.conftest import QUIET, SMALL_DATA
from tests.programs.fault_deployment import Deployment
from tests.support.helpers import corrupt_data_page

pytestmark = pytest.mark.slow

DAY1, DAY2 = SMALL_DATA.days
P1 = f"{DAY1}|churn_xgb"
P2 = f"{DAY2}|churn_xgb"
P3 = f"{DAY1}|churn_logreg"
LOG = logging.getLogger("test_faults")


@pytest.fixture(scope="module")
def reference(tmp_path_factory, trained_template) -> dict[str, pa.Table]:
    """Outputs of clean runs: what every recovery must end with."""
    deployment = Deployment.with_trained_models(tmp_path_factory.mktemp("clean"),
                                                trained_template)
    runs = {p: deployment.materialize(p) for p in (P1, P2, P3)}
    tables = {}
    for partition, process in runs.items():
        code, log = deployment.finish(process)
        assert code == 0, log[-3000:]
        tables[partition] = deployment.outputs(partition)
    return tables


def assert_same_as_clean(deployment: Deployment, partition: str, reference: dict) -> None:
    outputs = deployment.outputs(partition)
    keys = outputs.column(0).to_pylist()
    assert len(keys) == len(set(keys)), "a key was scored twice"
    assert outputs.equals(reference[partition]), "outputs differ from a clean run's"


def label(request: dg.RunRequest) -> str:
    """A run request as the suite names model-days: ``"<day>|<model>"``."""
    (key,) = request.asset_selection
    return f"{request.partition_key}|{model_of(key)}"


def run_ok(deployment: Deployment, partition: str) -> str:
    code, log = deployment.finish(deployment.materialize(partition))
    assert code == 0, log[-4000:]
    return log


def evaluate_reaper(deployment: Deployment) -> list[dg.RunRequest]:
    """One tick of orphan_reaper, as the daemon runs it."""
    sensor = build_reaper_sensor(load_registry(deployment.registry_path))
    with dg.build_sensor_context(instance=deployment.instance,
                                 resources=deployment.resources) as context:
        result = sensor(context)
    return list(result.run_requests or []) if isinstance(result, dg.SensorResult) else []


def instance_pids(deployment: Deployment, job_name: str) -> dict[str, int]:
    status = deployment.processing.open_client(deployment.storage).job_dir(job_name) / "status.json"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            instances = json.loads(status.read_text())["instances"]
            if instances and all(i.get("pid") for i in instances.values()):
                return {host: info["pid"] for host, info in instances.items()}
        time.sleep(0.05)
    raise AssertionError(f"instances of {job_name} never started")


def test_sigkill_of_one_instance_is_retried_and_loses_nothing(tmp_path, trained_template,
                                                               reference):
    deployment = Deployment.with_trained_models(tmp_path, trained_template)
    process = deployment.materialize(P1)
    record = deployment.wait_for_record(P1, IN_PROGRESS)
    pids = instance_pids(deployment, record.job_name)
    os.killpg(pids["algo-2"], signal.SIGKILL)
    code, log = deployment.finish(process)
    assert code == 0, log[-4000:]
    first, second = deployment.attempts(P1)
    assert first.status == FAILED and "algo-2 exited with code -9" in first.failure_reason
    assert second.status == COMPLETED  # the step's retry scored what was missing
    assert "instance or job lost: retried automatically" in log
    assert_same_as_clean(deployment, P1, reference)


def test_sigkill_of_an_instance_between_packs_of_tiny_files_loses_nothing(
        tmp_path, trained_template, reference):
    """A day of 5,000 two-row files: each instance writes packs of 1,000 files.
    algo-2 is killed once its first pack is published; the retry scores exactly the
    files no published pack holds, and every key ends in exactly one output with a
    clean run's prediction (the clean run had the same rows in 5 files: equal within
    float32 rounding)."""
    deployment = Deployment.with_trained_models(tmp_path, trained_template)
    folder = deployment.storage.root_path / data_prefix("customers", DAY2)
    table = pq.ParquetDataset(sorted(folder.glob("*.parquet"))).read()
    for path in folder.glob("*.parquet"):
        path.unlink()
    for index in range(table.num_rows // 2):
        pq.write_table(table.slice(index * 2, 2), folder / f"tiny-{index:05d}.parquet")
    process = deployment.materialize(P2)
    record = deployment.wait_for_record(P2, IN_PROGRESS)
    pids = instance_pids(deployment, record.job_name)
    instance = deployment.processing.open_client(deployment.storage).job_dir(
        record.job_name) / "instances" / "algo-2"
    deadline = time.monotonic() + 120
    while not list(instance.rglob("*.packed-1000.json")):
        assert time.monotonic() < deadline, "algo-2 published no pack"
        time.sleep(0.01)
    os.killpg(pids["algo-2"], signal.SIGKILL)
    code, log = deployment.finish(process)
    assert code == 0, log[-4000:]
    first, second = deployment.attempts(P2)
    assert first.status == FAILED and "algo-2 exited with code -9" in first.failure_reason
    assert second.status == COMPLETED
    # the second attempt scores what no published pack holds: at least algo-2's
    # unfinished files, at most all but its first pack (the job's failure stops algo-1)
    rescored = [int(n) for n in re.findall(r"to score: churn_xgb (\d+) files", log)]
    assert len(rescored) == 2 and rescored[0] == 5_000, rescored
    assert 1_500 <= rescored[1] <= 4_000, rescored
    outputs, clean = deployment.outputs(P2), reference[P2]
    keys = outputs.column(0).to_pylist()
    assert len(keys) == len(set(keys)) and keys == clean.column(0).to_pylist()
    # oneDAL's float32 sums depend on how rows are batched: 2-row files are predicted
    # in other batches than the clean run's 2,000-row files
    difference = np.abs(np.asarray(outputs["prediction"]) - np.asarray(clean["prediction"]))
    assert difference.max() < 1e-6
    manifests = [json.loads(p.read_text())
                 for p in (deployment.output_dir(P2) / "_manifests").glob("*.json")]
    assert {m["output"] for m in manifests} == {
        p.name for p in deployment.output_dir(P2).glob("*.parquet")}  # no orphan output


def test_sigkill_of_the_supervisor_is_retried_and_leaves_no_instance_folder(
        tmp_path, trained_template, reference):
    deployment = Deployment.with_trained_models(tmp_path, trained_template)
    process = deployment.materialize(P1)
    record = deployment.wait_for_record(P1, IN_PROGRESS)
    client = deployment.processing.open_client(deployment.storage)
    instance_pids(deployment, record.job_name)
    supervisor = json.loads((client.job_dir(record.job_name) / "status.json").read_text())[
        "supervisor_pid"]
    os.kill(supervisor, signal.SIGKILL)
    code, log = deployment.finish(process)
    assert code == 0, log[-4000:]
    first = deployment.attempts(P1)[0]
    assert first.status == FAILED and "supervisor" in first.failure_reason
    assert deployment.attempts(P1)[-1].status == COMPLETED
    assert not (client.job_dir(first.job_name) / "instances").exists()
    assert_same_as_clean(deployment, P1, reference)


def test_run_worker_killed_while_its_job_runs_blocks_nobody_and_its_job_is_adopted(
        tmp_path, trained_template, reference):
    """The production blocker: a SIGKILLed run kept the only pool slot forever. Now a
    real dagster-daemon's orphan_reaper fails it, frees the slot (the other
    partition's run proceeds) and requests the partition again; that run adopts
    the job the dead run left, so the partition has one job, not two."""
    deployment = Deployment.with_trained_models(tmp_path, trained_template, pool_limit=1)
    victim = deployment.materialize(P1)
    record = deployment.wait_for_record(P1, IN_PROGRESS)
    os.killpg(victim.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    victim.wait()
    other = deployment.materialize(P2)  # waits for the slot the dead run holds
    daemon = subprocess.Popen(
        [str(Path(sys.executable).with_name("dagster-daemon")), "run", "-f",
         str(deployment.defs_file)],
        cwd=deployment.root, env=deployment.env, stdout=open(tmp_path / "daemon.log", "wb"),  # noqa: SIM115
        stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        code, log = deployment.finish(other, timeout=300)
        assert code == 0, log[-4000:]
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            reruns = deployment.instance.get_runs(
                filters=dg.RunsFilter(tags={"batch/reaped_run": record.run_id}))
            if reruns and reruns[0].is_finished:
                break
            time.sleep(1)
        else:
            raise AssertionError("the dead run's partition was not run again: "
                                 + (tmp_path / "daemon.log").read_text()[-3000:])
        recovered_after = time.monotonic() - killed_at
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(60)
    (rerun,) = reruns
    assert rerun.status == dg.DagsterRunStatus.SUCCESS
    dead = deployment.instance.get_run_by_id(record.run_id)
    assert dead.status == dg.DagsterRunStatus.FAILURE
    attempts = deployment.attempts(P1)
    assert [(a.job_name, a.status) for a in attempts] == [(record.job_name, COMPLETED)], \
        "the partition's job was started twice"
    # the rerun took the job over, or found it ended and recorded by the reaper
    assert attempts[0].run_id in (record.run_id, rerun.run_id)
    materialized = deployment.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=prediction_key("churn_xgb"), asset_partitions=[DAY1]),
        limit=5).records
    assert [m.run_id for m in materialized] == [rerun.run_id]
    assert_same_as_clean(deployment, P1, reference)
    assert_same_as_clean(deployment, P2, reference)
    print(f"killed run recovered after {recovered_after:.0f} s")
    assert recovered_after < 180


def test_run_worker_killed_while_its_attempt_is_pending_does_not_wedge_the_partition(
        tmp_path, trained_template, reference):
    """Killed between recording attempt N (Pending) and submitting it: here while it
    waits for the account's instance quota, held by another job. The reaper fails the
    run and asks for the partition again; that run closes the attempt that was never
    submitted and scores the partition once the quota frees."""
    deployment = Deployment.with_trained_models(tmp_path, trained_template, pool_limit=2,
                                                instance_quota=2)
    for i in range(2):
        deployment.storage.write_bytes(f"data/d/dt=2026-11-01/part-{i}.parquet", b"x")
    deployment.storage.write_bytes("models/m/v1/model.json", b"{}")
    client = deployment.processing.open_client(deployment.storage)
    client.create_processing_job(**sleeping_job("other-tenant", instances=2))
    victim = deployment.materialize(P1)
    pending = deployment.wait_for_record(P1, PENDING)
    wait_for_line(victim, "instance quota in use")
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    assert deployment.job_store.get(pending.job_name).status == PENDING

    requests = evaluate_reaper(deployment)
    assert [label(r) for r in requests] == [P1]
    assert deployment.instance.get_run_by_id(pending.run_id).status == \
        dg.DagsterRunStatus.FAILURE
    closed = deployment.job_store.get(pending.job_name)
    assert closed.status == FAILED and closed.failure_reason.startswith("never submitted")
    client.stop_processing_job(ProcessingJobName="other-tenant")
    run_ok(deployment, P1)  # the reaper's request, launched as the daemon would
    assert [a.status for a in deployment.attempts(P1)] == [FAILED, COMPLETED]
    assert_same_as_clean(deployment, P1, reference)


def test_two_runs_of_one_partition_started_together_share_one_job(tmp_path, trained_template,
                                                                   reference):
    deployment = Deployment.with_trained_models(tmp_path, trained_template, pool_limit=2)
    first, second = deployment.materialize(P1), deployment.materialize(P1)
    logs = [deployment.finish(first), deployment.finish(second)]
    for code, log in logs:
        assert code == 0, log[-4000:]
    assert [a.status for a in deployment.attempts(P1)] == [COMPLETED]
    assert sum("adopting job" in log or "nothing to run" in log for _, log in logs) == 1
    assert_same_as_clean(deployment, P1, reference)


def test_truncated_output_is_found_and_rescored_by_the_retry_sensor(tmp_path, trained_template,
                                                                    reference):
    deployment = Deployment.with_trained_models(tmp_path, trained_template)
    run_ok(deployment, P1)
    damaged = sorted(deployment.output_dir(P1).glob("*.parquet"))[2]
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])
    definitions = deployment_definitions(deployment)
    checks = run_checks(definitions, deployment, P1)
    assert not checks["predictions_complete"] and not checks["predictions_valid"]

    requests = evaluate_retry_sensor(definitions, deployment)
    assert [label(r) for r in requests] == [P1]
    log = run_ok(deployment, P1)
    assert "5 input files; to score: churn_xgb 1 files" in log  # the damaged one only
    assert_same_as_clean(deployment, P1, reference)


def test_read_only_output_folder_fails_once_without_retry_then_succeeds_after_the_fix(
        tmp_path, trained_template, reference):
    deployment = Deployment.with_trained_models(tmp_path, trained_template)
    output_dir = deployment.output_dir(P1)
    output_dir.mkdir(parents=True)
    with read_only(output_dir):
        code, log = deployment.finish(deployment.materialize(P1))
        assert code != 0
        assert "permission denied: not retried" in log, log[-4000:]
        assert str(output_dir) in log or "Permission" in log
        (attempt,) = deployment.attempts(P1)  # no retry spent on it
        assert attempt.status == FAILED
        definitions = deployment_definitions(deployment)
        assert not run_checks(definitions, deployment, P1)["predictions_complete"]
        # the check failed, but the last job failed for a reason a rerun cannot fix
        assert not evaluate_retry_sensor(definitions, deployment)
    run_ok(deployment, P1)
    assert_same_as_clean(deployment, P1, reference)


def test_corrupt_input_fails_without_retry_naming_the_file_then_redelivery_completes(
        tmp_path, trained_template, reference):
    deployment = Deployment.with_trained_models(tmp_path, trained_template)
    day_dir = deployment.storage.root_path / data_prefix("customers", DAY1)
    victim = sorted(day_dir.glob("*.parquet"))[1]
    good = victim.read_bytes()
    corrupt_data_page(victim)
    code, log = deployment.finish(deployment.materialize(P1))
    assert code != 0
    assert f"Bad input: input file {victim.name}" in log and "bad input: not retried" in log
    assert [a.status for a in deployment.attempts(P1)] == [FAILED]
    victim.write_bytes(good)  # re-delivered
    log = run_ok(deployment, P1)
    assert_same_as_clean(deployment, P1, reference)


# --- helpers ----------------------------------------------------------------------------

def sleeping_job(name: str, instances: int) -> dict:
    from tests.orchestration.test_local_runner import request

    return request(name, "sleep", instances)


def wait_for_line(process: subprocess.Popen, text: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in process.log_path.read_text(errors="replace"):  # type: ignore[attr-defined]
            return
        if process.poll() is not None:
            break
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not logged: "
                         + process.log_path.read_text(errors="replace")[-3000:])  # type: ignore[attr-defined]


@contextlib.contextmanager
def read_only(folder: Path):
    """A folder nobody may write to, root included (chattr +i as root, chmod otherwise)."""
    as_root = os.geteuid() == 0
    if as_root:
        subprocess.run(["chattr", "+i", str(folder)], check=True)
    else:
        folder.chmod(0o555)
    try:
        yield
    finally:
        if as_root:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        else:
            folder.chmod(0o755)


def deployment_definitions(deployment: Deployment) -> dg.Definitions:
    from batch_assets.definitions import build_definitions

    return build_definitions(deployment.registry_path, deployment.resources)


def run_checks(definitions: dg.Definitions, deployment: Deployment,
               partition: str) -> dict[str, bool]:
    """The predictions checks alone, as the UI's "Execute checks" runs them."""
    day, model = partition.split("|")
    checks = {key for key in definitions.resolve_asset_graph().asset_check_keys
              if key.asset_key == prediction_key(model)}
    job = definitions.resolve_implicit_global_asset_job_def().get_subset(
        asset_check_selection=checks)
    result = job.execute_in_process(tags={"dagster/partition": day},
                                    instance=deployment.instance, raise_on_error=False,
                                    run_config=QUIET)
    return {evaluation.check_name: evaluation.passed
            for evaluation in result.get_asset_check_evaluations()}


def evaluate_retry_sensor(definitions: dg.Definitions,
                          deployment: Deployment) -> list[dg.RunRequest]:
    sensor = definitions.resolve_sensor_def("predictions_retry_sensor")
    with dg.build_sensor_context(instance=deployment.instance,
                                 resources=deployment.resources) as context:
        result = sensor(context)
    return list(result.run_requests or []) if isinstance(result, dg.SensorResult) else []
