"""The local Processing runner: the same request as SageMaker, run as N local instances."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from botocore.exceptions import ClientError, ParamValidationError

from resources.local_processing.client import LocalProcessingClient
from resources.processing_request import (
    ClusterSpec,
    InputChannel,
    OutputChannel,
    ProcessingJobSpec,
    build_processing_job_request,
)
from resources.storage import LocalBucketStorage

PROGRAM = str(Path(__file__).parents[1] / "programs" / "instance_program.py")
WORKER_PROGRAM = str(Path(__file__).parents[1] / "programs" / "instance_with_worker.py")


@pytest.fixture
def storage(tmp_path) -> LocalBucketStorage:
    storage = LocalBucketStorage(root=str(tmp_path / "bucket"))
    for i in range(7):
        storage.write_bytes(f"data/d/dt=2026-11-01/part-{i}.parquet", b"x" * (i + 1))
    storage.write_bytes("models/m/v1/model.json", b"{}")
    storage.write_bytes("models/m/v1/model.ubj", b"\0")
    return storage


@pytest.fixture
def client(storage, tmp_path) -> LocalProcessingClient:
    return LocalProcessingClient(storage, tmp_path / "jobs", stop_grace_seconds=2.0)


def request(name: str, mode: str, instances: int, data_prefix="data/d/dt=2026-11-01/",
            max_runtime=600) -> dict:
    return build_processing_job_request(ProcessingJobSpec(
        job_name=name,
        image_uri="local",
        entrypoint=["python3", PROGRAM],
        arguments=[mode],
        inputs=[
            InputChannel("data", f"s3://local-bucket/{data_prefix}",
                         "/opt/ml/processing/input/data", distribution="ShardedByS3Key"),
            InputChannel("model", "s3://local-bucket/models/m/v1/",
                         "/opt/ml/processing/input/model"),
        ],
        outputs=[OutputChannel("out", f"s3://local-bucket/out/{name}/",
                               "/opt/ml/processing/output/out")],
        cluster=ClusterSpec("ml.m5.xlarge", instances),
        max_runtime_seconds=max_runtime,
    ))


def wait_for(client, name, statuses, timeout=60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        described = client.describe_processing_job(ProcessingJobName=name)
        if described["ProcessingJobStatus"] in statuses:
            return described
        time.sleep(0.1)
    raise AssertionError(f"{name} did not reach {statuses}: {described}")


def reports(storage, name) -> dict[str, dict]:
    return {
        Path(o.key).stem: json.loads(storage.read_bytes(o.key))
        for o in storage.list_objects(f"out/{name}/") if o.key.endswith(".json")
    }


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


def instance_pids(job_dir: Path, count: int, timeout: float = 30.0) -> list[int]:
    """Pids the sleeping instances recorded, once all ``count`` have started."""
    deadline = time.monotonic() + timeout
    pid_files: list[Path] = []
    while time.monotonic() < deadline and len(pid_files) < count:
        pid_files = list(job_dir.glob("instances/*/opt_ml/processing/output/out/*.pid"))
        time.sleep(0.1)
    assert len(pid_files) == count, f"only {len(pid_files)} of {count} instances started"
    return [int(p.read_text()) for p in pid_files]


def test_sharded_input_is_split_and_replicated_input_copied(client, storage):
    client.create_processing_job(**request("shard-3", "list", 3))
    described = wait_for(client, "shard-3", {"Completed", "Failed"})
    assert described["ProcessingJobStatus"] == "Completed", described.get("FailureReason")
    seen = reports(storage, "shard-3")
    assert sorted(seen) == ["algo-1", "algo-2", "algo-3"]
    shards = [seen[h]["seen"]["data"] for h in sorted(seen)]
    flat = [f for shard in shards for f in shard]
    assert sorted(flat) == [f"part-{i}.parquet" for i in range(7)]
    assert len(flat) == len(set(flat))
    assert sorted(len(s) for s in shards) == [2, 2, 3]
    for host in seen.values():
        assert host["seen"]["model"] == ["model.json", "model.ubj"]
        assert host["cpus"] == str(max(1, len(os.sched_getaffinity(0)) // 3))
    assert described["ProcessingStartTime"] <= described["ProcessingEndTime"]


def test_more_instances_than_objects_leaves_some_idle(client, storage):
    for i in range(2):
        storage.write_bytes(f"data/small/part-{i}.parquet", b"y")
    client.create_processing_job(**request("shard-4", "list", 4, data_prefix="data/small/"))
    assert wait_for(client, "shard-4", {"Completed", "Failed"})["ProcessingJobStatus"] == \
        "Completed"
    sizes = sorted(len(r["seen"]["data"]) for r in reports(storage, "shard-4").values())
    assert sizes == [0, 0, 1, 1]


def test_failed_instance_fails_the_job_with_its_message(client, storage):
    client.create_processing_job(**request("fails", "fail", 2))
    described = wait_for(client, "fails", {"Completed", "Failed"})
    assert described["ProcessingJobStatus"] == "Failed"
    assert "algo-2: input file part-9.parquet is corrupt" in described["FailureReason"]
    assert described["ExitMessage"] == "algo-2: input file part-9.parquet is corrupt"
    # algo-1's output was written before the failure and uploaded (Continuous mode)
    assert "algo-1" in reports(storage, "fails")


def test_stop_terminates_instance_processes(client, storage, tmp_path):
    client.create_processing_job(**request("stops", "sleep", 2))
    pids = instance_pids(tmp_path / "jobs" / "stops", 2)
    assert len(pids) == 2 and all(pid_alive(p) for p in pids)
    client.stop_processing_job(ProcessingJobName="stops")
    described = wait_for(client, "stops", {"Stopped", "Completed", "Failed"}, timeout=30)
    assert described["ProcessingJobStatus"] == "Stopped"
    assert not any(pid_alive(p) for p in pids)
    with pytest.raises(ClientError) as error:
        client.stop_processing_job(ProcessingJobName="stops")
    assert error.value.response["Error"]["Code"] == "ValidationException"


def test_killed_supervisor_marks_job_failed_and_takes_instances_down(client, tmp_path):
    client.create_processing_job(**request("orphan", "sleep", 2))
    pids = instance_pids(tmp_path / "jobs" / "orphan", 2)
    status = json.loads((tmp_path / "jobs/orphan/status.json").read_text())
    os.kill(status["supervisor_pid"], signal.SIGKILL)
    described = wait_for(client, "orphan", {"Failed", "Completed", "Stopped"}, timeout=15)
    assert described["ProcessingJobStatus"] == "Failed"
    assert "supervisor" in described["FailureReason"] and "died" in described["FailureReason"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
        time.sleep(0.1)
    assert not any(pid_alive(p) for p in pids), "instances outlived their supervisor"
    assert not (tmp_path / "jobs/orphan/instances").exists()


def instance_and_worker_pids(job_dir: Path, count: int, timeout: float = 30.0) -> list[int]:
    """(instance, worker) pids WORKER_PROGRAM recorded, once all ``count`` have started."""
    deadline = time.monotonic() + timeout
    pid_files: list[Path] = []
    while time.monotonic() < deadline and len(pid_files) < count:
        pid_files = list(job_dir.glob("instances/*/opt_ml/processing/output/out/*.pids"))
        time.sleep(0.1)
    assert len(pid_files) == count, f"only {len(pid_files)} of {count} instances started"
    return [int(pid) for p in pid_files for pid in p.read_text().split()]


def process_group(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[2])


@pytest.mark.parametrize("keep_instance_dirs", [False, True])
def test_dead_supervisor_leaves_no_instance_process_or_folder(storage, tmp_path,
                                                              keep_instance_dirs):
    client = LocalProcessingClient(storage, tmp_path / "jobs", stop_grace_seconds=2.0,
                                   keep_instance_dirs=keep_instance_dirs)
    job = request("leaky", "sleep", 2)
    job["AppSpecification"]["ContainerEntrypoint"] = ["python3", WORKER_PROGRAM]
    client.create_processing_job(**job)
    job_dir = tmp_path / "jobs" / "leaky"
    pids = instance_and_worker_pids(job_dir, 2)
    assert len(pids) == 4 and all(pid_alive(p) for p in pids)
    instances, workers = pids[0::2], pids[1::2]
    assert [process_group(w) for w in workers] == instances  # workers share the group
    status = json.loads((job_dir / "status.json").read_text())
    os.kill(status["supervisor_pid"], signal.SIGKILL)
    try:
        described = wait_for(client, "leaky", {"Failed", "Completed", "Stopped"}, timeout=15)

        assert described["ProcessingJobStatus"] == "Failed"
        assert described["FailureReason"] == (
            f"local runner supervisor (pid {status['supervisor_pid']}) died; see "
            f"{job_dir / 'supervisor.log'}")
        # the describe that noticed the death cleaned up before answering: no waiting here
        assert [p for p in pids if pid_alive(p)] == [], "instance processes outlived the job"
        assert (job_dir / "instances").exists() == keep_instance_dirs
        assert sorted(p.name for p in (job_dir / "logs").iterdir()) == ["algo-1.log",
                                                                        "algo-2.log"]
        again = client.describe_processing_job(ProcessingJobName="leaky")
        assert again["FailureReason"] == described["FailureReason"]
    finally:  # a failing run must not leave its sleeping workers behind
        for pid in pids:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_max_runtime_is_enforced(client):
    client.create_processing_job(**request("slow", "sleep", 1, max_runtime=1))
    described = wait_for(client, "slow", {"Completed", "Failed", "Stopped"}, timeout=30)
    assert described["ProcessingJobStatus"] == "Failed"
    assert "MaxRuntimeInSeconds" in described["FailureReason"]


def test_api_errors_match_sagemaker(client):
    with pytest.raises(ClientError) as missing:
        client.describe_processing_job(ProcessingJobName="nope")
    assert missing.value.response["Error"]["Code"] == "ValidationException"
    client.create_processing_job(**request("dup", "list", 1))
    with pytest.raises(ClientError) as duplicate:
        client.create_processing_job(**request("dup", "list", 1))
    assert duplicate.value.response["Error"]["Code"] == "ResourceInUse"
    bad = request("bad", "list", 1)
    del bad["RoleArn"]
    with pytest.raises(ParamValidationError):
        client.create_processing_job(**bad)
    wait_for(client, "dup", {"Completed", "Failed"})



def test_instance_quota_refuses_a_job_that_does_not_fit_as_sagemaker_does(storage, tmp_path):
    client = LocalProcessingClient(storage, tmp_path / "jobs", stop_grace_seconds=1.0,
                                   instance_quota=3)
    client.create_processing_job(**request("holds-two", "sleep", 2))
    with pytest.raises(ClientError) as error:
        client.create_processing_job(**request("wants-two", "report", 2))
    assert error.value.response["Error"]["Code"] == "ResourceLimitExceeded"
    assert "current utilization of 2 Instances and a request delta of 2" in str(error.value)
    assert not (tmp_path / "jobs" / "wants-two").exists()
    client.create_processing_job(**request("fits-one", "report", 1))  # 2 + 1 <= 3
    client.stop_processing_job(ProcessingJobName="holds-two")
    wait_for(client, "holds-two", {"Stopped"}, timeout=30)
    client.create_processing_job(**request("wants-two", "report", 2))  # freed on stop
    assert wait_for(client, "wants-two", {"Completed"}, timeout=60)
