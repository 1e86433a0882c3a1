"""``LocalProcessingClient``: the subset of boto3's SageMaker client the pipeline uses,
answered by local processes.

``create_processing_job(**request)`` takes the exact request SageMaker would get,
checks it against botocore's own model of the API, and starts a detached
supervisor that runs the job; ``describe_processing_job`` and
``stop_processing_job`` answer as SageMaker does, with the same status names and
error codes, so the code that waits on jobs cannot tell the two apart.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import botocore.session
from botocore.exceptions import ClientError, ParamValidationError
from botocore.validate import ParamValidator

from container.contract import ROOT_ENV_VAR
from resources.job_status import FAILED, IN_PROGRESS, TERMINAL
from resources.local_processing.job_files import JobPaths, JobStatus
from resources.local_processing.supervisor import local_job_arn
from resources.storage import ObjectStorage

KILL_TIMEOUT_SECONDS = 10.0
_children: dict[str, subprocess.Popen] = {}  # supervisors started here, reaped in describe


def _client_error(code: str, message: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


def validate_request(operation: str, params: dict) -> None:
    """Validate ``params`` against botocore's SageMaker service model (as boto3 would)."""
    model = botocore.session.get_session().get_service_model("sagemaker")
    shape = model.operation_model(operation).input_shape
    report = ParamValidator().validate(params, shape)
    if report.has_errors():
        raise ParamValidationError(report=report.generate_report())


class LocalProcessingClient:
    """Runs processing jobs as local processes; one folder per job under ``work_dir``."""

    def __init__(self, storage: ObjectStorage, work_dir: Path, *,
                 keep_instance_dirs: bool = False, stop_grace_seconds: float = 10.0,
                 instance_quota: int | None = None) -> None:
        self.storage = storage
        self.work_dir = Path(work_dir).resolve()
        self.keep_instance_dirs = keep_instance_dirs
        self.stop_grace_seconds = stop_grace_seconds
        self.instance_quota = instance_quota

    def _paths(self, job_name: str) -> JobPaths:
        return JobPaths(self.work_dir / job_name)

    def create_processing_job(self, **request) -> dict:
        validate_request("CreateProcessingJob", request)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        with open(self.work_dir / ".create.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # quota check and creation as one step
            self._check_quota(request["ProcessingResources"]["ClusterConfig"])
            return self._create(request)

    def _check_quota(self, cluster: dict) -> None:
        """Answer ``ResourceLimitExceeded`` as SageMaker does when the account's
        instances of this type (``instance_quota``) are taken by running jobs."""
        if self.instance_quota is None:
            return
        instance_type, wanted = cluster["InstanceType"], cluster["InstanceCount"]
        in_use = 0
        for status_file in self.work_dir.glob("*/status.json"):
            job_name = status_file.parent.name
            described = self.describe_processing_job(ProcessingJobName=job_name)
            config = described["ProcessingResources"]["ClusterConfig"]
            if described["ProcessingJobStatus"] not in TERMINAL and \
                    config["InstanceType"] == instance_type:
                in_use += config["InstanceCount"]
        if in_use + wanted > self.instance_quota:
            raise _client_error(
                "ResourceLimitExceeded",
                f"The account-level service limit '{instance_type} for processing job "
                f"usage' is {self.instance_quota} Instances, with current utilization of "
                f"{in_use} Instances and a request delta of {wanted} Instances. Please use "
                "AWS Service Quotas to request an increase for this quota.",
                "CreateProcessingJob",
            )

    def _create(self, request: dict) -> dict:
        name = request["ProcessingJobName"]
        paths = self._paths(name)
        try:
            paths.root.mkdir()
        except FileExistsError:
            raise _client_error(
                "ResourceInUse", f"Job name {name} must be unique within an AWS account and "
                "region, and a job with this name already exists", "CreateProcessingJob",
            ) from None
        paths.request.write_text(json.dumps(request, indent=2))
        paths.storage.write_text(json.dumps(self.storage.spec()))
        paths.settings.write_text(json.dumps({
            "keep_instance_dirs": self.keep_instance_dirs,
            "stop_grace_seconds": self.stop_grace_seconds,
        }))
        now = time.time()
        paths.write_status(JobStatus(status=IN_PROGRESS, creation_time=now,
                                     last_modified_time=now))
        with open(paths.supervisor_log, "ab") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", "resources.local_processing.supervisor", str(paths.root)],
                stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        _children[name] = process
        return {"ProcessingJobArn": local_job_arn(name)}

    def describe_processing_job(self, ProcessingJobName: str) -> dict:
        paths = self._paths(ProcessingJobName)
        if not paths.status.is_file():
            raise _client_error(
                "ValidationException", f"Could not find requested job with name "
                f"{ProcessingJobName}", "DescribeProcessingJob",
            )
        status = paths.read_status()
        if status.status not in TERMINAL and not self._supervisor_alive(ProcessingJobName,
                                                                        status):
            time.sleep(0.05)  # the supervisor may have written its last status as it exited
            status = paths.read_status()
            if status.status not in TERMINAL:
                status.status = FAILED
                status.failure_reason = (
                    f"local runner supervisor (pid {status.supervisor_pid}) died; see "
                    f"{paths.supervisor_log}"
                ) + _clean_up_after_dead_supervisor(paths, status)
                status.end_time = status.last_modified_time = time.time()
                paths.write_status(status)
        return self._describe(ProcessingJobName, paths, status)

    def stop_processing_job(self, ProcessingJobName: str) -> dict:
        status = self.describe_processing_job(ProcessingJobName)["ProcessingJobStatus"]
        if status in TERMINAL:
            raise _client_error(
                "ValidationException", f"The job {ProcessingJobName} has status {status} and "
                "cannot be stopped", "StopProcessingJob",
            )
        paths = self._paths(ProcessingJobName)
        paths.stop_requested.touch()
        pid = paths.read_status().supervisor_pid
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        return {}

    def _supervisor_alive(self, job_name: str, status: JobStatus) -> bool:
        child = _children.get(job_name)
        if child is not None:
            return child.poll() is None
        if status.supervisor_pid is None:
            # created moments ago by another process that has not recorded the pid yet
            return time.time() - status.creation_time < 30
        try:
            os.kill(status.supervisor_pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return _is_running(status.supervisor_pid)

    def _describe(self, name: str, paths: JobPaths, status: JobStatus) -> dict:
        request = json.loads(paths.request.read_text())
        described = {
            "ProcessingJobName": name,
            "ProcessingJobArn": local_job_arn(name),
            "ProcessingJobStatus": status.status,
            "ProcessingInputs": request.get("ProcessingInputs", []),
            "ProcessingOutputConfig": request.get("ProcessingOutputConfig", {}),
            "ProcessingResources": request["ProcessingResources"],
            "StoppingCondition": request["StoppingCondition"],
            "AppSpecification": request["AppSpecification"],
            "Environment": request.get("Environment", {}),
            "RoleArn": request["RoleArn"],
            "CreationTime": _time(status.creation_time),
            "LastModifiedTime": _time(status.last_modified_time),
        }
        if status.start_time:
            described["ProcessingStartTime"] = _time(status.start_time)
        if status.end_time:
            described["ProcessingEndTime"] = _time(status.end_time)
        if status.failure_reason:
            described["FailureReason"] = status.failure_reason
        if status.exit_message:
            described["ExitMessage"] = status.exit_message
        return described

    def job_dir(self, job_name: str) -> Path:
        return self._paths(job_name).root

    def logs_dir(self, job_name: str) -> Path:
        """Where the job's instances write their output (``<host>.log`` each)."""
        return self._paths(job_name).logs_dir


def _time(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=UTC)


def _is_running(pid: int) -> bool:
    """False for a zombie (exited, not yet reaped by its parent)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def _clean_up_after_dead_supervisor(paths: JobPaths, status: JobStatus) -> str:
    """Do the dead supervisor's last duty: no instance process may outlive the job, and its
    ``instances/`` folder (each instance's /opt/ml with staged inputs) is removed unless the
    job keeps it. Returns text to append to the failure reason ("" when all went well)."""
    instances_dir = paths.root / "instances"
    survivors = _kill_instance_processes(instances_dir, status)
    if survivors:
        return (f"; instance process(es) {', '.join(map(str, survivors))} did not die after "
                f"SIGKILL, so {instances_dir} was kept; kill them and delete it by hand")
    try:
        keep = json.loads(paths.settings.read_text())["keep_instance_dirs"]
    except (OSError, ValueError, KeyError):
        keep = False
    if not keep:
        shutil.rmtree(instances_dir, ignore_errors=True)
    return ""


def _kill_instance_processes(instances_dir: Path, status: JobStatus) -> list[int]:
    """SIGKILL the job's instance processes and wait for them; returns pids still alive.

    Instances get SIGKILL with their supervisor (PR_SET_PDEATHSIG), but their own workers
    do not. An instance process is found by the /opt/ml root the supervisor put in its
    environment (inherited by its workers), so a recycled pid is never signalled; each
    recorded instance pid leads its own process group, which is killed whole.
    """
    groups = {info["pid"] for info in status.instances.values() if info.get("pid")}
    deadline = time.monotonic() + KILL_TIMEOUT_SECONDS
    while True:
        found = _processes_under(instances_dir)
        if not found or time.monotonic() > deadline:
            return sorted(found)
        for pid, group in found.items():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if group in groups:
                    os.killpg(group, signal.SIGKILL)
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)


def _processes_under(instances_dir: Path) -> dict[int, int]:
    """Live (non-zombie) processes whose /opt/ml root lies in ``instances_dir``: pid -> pgid."""
    prefix = f"{ROOT_ENV_VAR}={instances_dir}/".encode()
    found: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # exited meanwhile, or not ours to read
        if fields[0] != "Z" and any(v.startswith(prefix) for v in environ.split(b"\0")):
            found[int(entry.name)] = int(fields[2])
    return found
