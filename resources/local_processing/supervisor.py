"""Run one local processing job: ``python -m resources.local_processing.supervisor JOB_DIR``.

It plays SageMaker's part for one job: stage each instance's inputs (sharded or
replicated), write ``/opt/ml/config`` files, start ``InstanceCount`` instance
processes, upload outputs (continuously or at the end), enforce
``MaxRuntimeInSeconds``, and record the job status. It runs detached from the
process that submitted it, as a SageMaker job outlives the run that created it.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from container import contract
from resources.buckets import Bucket, bucket_from_spec
from resources.job_status import COMPLETED, FAILED, IN_PROGRESS, STOPPED, STOPPING
from resources.local_processing.job_files import JobPaths
from resources.local_processing.staging import resolve_input_objects
from resources.s3_uri import parse_s3_uri
from resources.sharding import shard_objects

log = logging.getLogger("local_processing.supervisor")

POLL_SECONDS = 0.2
# a continuous upload scan waits this many times its own duration before the next:
# its cost stays near 1/UPLOAD_SCAN_PACE of a core however many outputs there are
UPLOAD_SCAN_PACE = 10.0
PYTHON_COMMANDS = {"python", "python3"}


class StopRequested(Exception):
    pass


class Supervisor:
    def __init__(self, paths: JobPaths) -> None:
        self.paths = paths
        self.request = json.loads(paths.request.read_text())
        self.storage: Bucket = bucket_from_spec(json.loads(paths.storage.read_text()))
        self.status = paths.read_status()
        cluster = self.request["ProcessingResources"]["ClusterConfig"]
        self.hosts = [f"algo-{i + 1}" for i in range(cluster["InstanceCount"])]
        self.processes: dict[str, subprocess.Popen] = {}
        self.uploaded: dict[str, tuple[int, int]] = {}
        self.stop_flag = False
        self.next_upload_scan = 0.0  # monotonic time of the next continuous upload scan
        self.settings = json.loads(paths.settings.read_text())

    # --- status ---------------------------------------------------------------------

    def _set(self, status: str, **fields) -> None:
        self.status.status = status
        self.status.last_modified_time = time.time()
        for name, value in fields.items():
            setattr(self.status, name, value)
        self.paths.write_status(self.status)

    def _check_stop(self) -> None:
        if self.stop_flag or self.paths.stop_requested.exists():
            raise StopRequested

    # --- staging --------------------------------------------------------------------

    def _stage(self) -> None:
        for host in self.hosts:
            root = self.paths.instance_root(host)
            (root / "config").mkdir(parents=True, exist_ok=True)
            (root / "output").mkdir(parents=True, exist_ok=True)
            config = dict(self.request)
            config["ProcessingJobArn"] = local_job_arn(self.request["ProcessingJobName"])
            (root / contract.JOB_CONFIG_FILE).write_text(json.dumps(config))
            (root / contract.RESOURCE_CONFIG_FILE).write_text(
                json.dumps({"current_host": host, "hosts": self.hosts})
            )
            for output in self.request.get("ProcessingOutputConfig", {}).get("Outputs", []):
                self._local(root, output["S3Output"]["LocalPath"]).mkdir(parents=True,
                                                                         exist_ok=True)
        for channel in self.request.get("ProcessingInputs", []):
            s3_input = channel["S3Input"]
            objects = resolve_input_objects(self.storage, s3_input)
            if s3_input["S3DataDistributionType"] == "ShardedByS3Key":
                by_key = dict(objects)
                shards = shard_objects(list(by_key), len(self.hosts))
                assignment = {
                    host: [(key, by_key[key]) for key in shard]
                    for host, shard in zip(self.hosts, shards, strict=True)
                }
            else:
                assignment = {h: objects for h in self.hosts}
            for host, host_objects in assignment.items():
                target = self._local(self.paths.instance_root(host), s3_input["LocalPath"])
                target.mkdir(parents=True, exist_ok=True)
                for key, relative in host_objects:
                    self._check_stop()
                    self.storage.download_file(key, target / relative)
            log.info("staged input %s: %d objects (%s)", channel["InputName"], len(objects),
                     s3_input["S3DataDistributionType"])

    @staticmethod
    def _local(root: Path, container_path: str) -> Path:
        return root / contract.opt_ml_relative(container_path)

    # --- instances ------------------------------------------------------------------

    def _command(self) -> list[str]:
        app = self.request["AppSpecification"]
        command = [*app.get("ContainerEntrypoint", []), *app.get("ContainerArguments", [])]
        if not command:
            raise ValueError("AppSpecification has no ContainerEntrypoint; the local runner "
                             "cannot read an image's default entrypoint")
        if command[0] in PYTHON_COMMANDS:
            command[0] = sys.executable  # the image's Python is this environment's Python
        return command

    def _launch(self) -> None:
        command = self._command()
        cpus = max(1, len(os.sched_getaffinity(0)) // len(self.hosts))
        for host in self.hosts:
            env = dict(os.environ)
            env.update(self.request.get("Environment", {}))
            env[contract.ROOT_ENV_VAR] = str(self.paths.instance_root(host))
            env[contract.NUM_CPUS_ENV_VAR] = str(cpus)
            log_path = self.paths.instance_log(host)
            log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(log_path, "ab") as log_file:
                self.processes[host] = subprocess.Popen(
                    command, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, start_new_session=True,
                    preexec_fn=_die_with_parent,
                )
            self.status.instances[host] = {"pid": self.processes[host].pid, "exit_code": None}
        self.paths.write_status(self.status)
        log.info("started %d instances: %s", len(self.hosts), " ".join(command))

    def _terminate_instances(self) -> None:
        running = [p for p in self.processes.values() if p.poll() is None]
        for process in running:
            _signal_group(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.settings["stop_grace_seconds"]
        for process in running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
        for process in self.processes.values():
            _signal_group(process.pid, signal.SIGKILL)  # the group: worker processes too
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)

    def _failed_instance(self) -> str | None:
        for host, process in self.processes.items():
            code = process.poll()
            self.status.instances[host]["exit_code"] = code
            if code not in (None, 0):
                return host
        return None

    def _failure_message(self, host: str) -> str:
        message_file = self.paths.instance_root(host) / contract.FAILURE_MESSAGE_FILE
        code = self.processes[host].returncode
        if message_file.is_file():
            message = message_file.read_bytes()[:contract.MESSAGE_LIMIT_BYTES]
            return message.decode("utf-8", "replace")
        return (f"instance {host} exited with code {code} and wrote no "
                f"{contract.OPT_ML}/{contract.FAILURE_MESSAGE_FILE}")

    # --- outputs --------------------------------------------------------------------

    def _upload_continuous(self) -> None:
        """The poll's continuous upload, paced by its own cost: a scan is due once
        ``UPLOAD_SCAN_PACE`` times its last duration has passed (at least every poll).
        A job writing thousands of small outputs would otherwise spend a good part
        of a core rescanning them every 0.2 s, on the cores its instances score on;
        everything left is uploaded at the end anyway."""
        if time.monotonic() < self.next_upload_scan:
            return
        started = time.monotonic()
        self._upload("Continuous")
        self.next_upload_scan = started + (time.monotonic() - started) * UPLOAD_SCAN_PACE

    def _upload(self, mode: str, final: bool = False) -> None:
        """Upload new or changed output files of every instance (symlinks are skipped,
        as SageMaker does); oldest first, so a manifest follows its data file."""
        for output in self.request.get("ProcessingOutputConfig", {}).get("Outputs", []):
            s3_output = output["S3Output"]
            if s3_output["S3UploadMode"] != mode and not final:
                continue
            _bucket, prefix = parse_s3_uri(s3_output["S3Uri"])
            prefix = prefix.rstrip("/")
            for host in self.hosts:
                local_dir = self._local(self.paths.instance_root(host), s3_output["LocalPath"])
                for _mtime, path, relative, signature in sorted(_output_files(local_dir)):
                    marker = f"{host}:{s3_output['LocalPath']}:{relative}"
                    if self.uploaded.get(marker) == signature:
                        continue
                    key = f"{prefix}/{relative}" if prefix else relative
                    self.storage.upload_file(path, key)
                    self.uploaded[marker] = signature

    # --- main -----------------------------------------------------------------------

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self._on_sigterm)
        max_runtime = self.request["StoppingCondition"]["MaxRuntimeInSeconds"]
        self._set(IN_PROGRESS, start_time=time.time(), supervisor_pid=os.getpid())
        try:
            self._check_stop()
            self._stage()
            self._check_stop()
            self._launch()
            deadline = time.monotonic() + max_runtime
            while True:
                time.sleep(POLL_SECONDS)
                self._upload_continuous()
                self._check_stop()
                failed = self._failed_instance()
                if failed:
                    self._terminate_instances()
                    self._upload("EndOfJob", final=True)
                    message = self._failure_message(failed)
                    self._set(FAILED, end_time=time.time(), exit_message=message,
                              failure_reason=f"AlgorithmError: {message}")
                    return
                if all(p.poll() == 0 for p in self.processes.values()):
                    self._failed_instance()
                    self._upload("EndOfJob", final=True)
                    self._set(COMPLETED, end_time=time.time())
                    return
                if time.monotonic() > deadline:
                    self._terminate_instances()
                    self._upload("EndOfJob", final=True)
                    self._set(FAILED, end_time=time.time(),
                              failure_reason=f"MaxRuntimeInSeconds ({max_runtime}s) exceeded")
                    return
        except StopRequested:
            self._set(STOPPING)
            self._terminate_instances()
            self._failed_instance()
            self._upload("EndOfJob", final=True)
            self._set(STOPPED, end_time=time.time(), failure_reason="stopped by request")
        except Exception as exc:
            log.exception("local processing job failed")
            self._terminate_instances()
            self._set(FAILED, end_time=time.time(),
                      failure_reason=f"local runner error: {type(exc).__name__}: {exc}")
        finally:
            self._cleanup()

    def _on_sigterm(self, _signum, _frame) -> None:
        self.stop_flag = True

    def _cleanup(self) -> None:
        if not self.settings["keep_instance_dirs"]:
            shutil.rmtree(self.paths.root / "instances", ignore_errors=True)


def _output_files(local_dir: Path) -> list[tuple[int, Path, str, tuple[int, int]]]:
    """Regular files below ``local_dir`` (symlinks skipped): (mtime, path, relative
    path, (size, mtime)). ``os.scandir`` knows each entry's type without a ``stat``;
    only files are stat'ed, once."""
    found = []
    pending = [(local_dir, "")]
    while pending:
        folder, relative = pending.pop()
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            continue
        for entry in entries:
            if entry.is_symlink():
                continue
            name = f"{relative}{entry.name}"
            if entry.is_dir():
                pending.append((Path(entry.path), name + "/"))
            elif entry.is_file():
                try:
                    stat = entry.stat()
                except FileNotFoundError:  # renamed away meanwhile
                    continue
                found.append((stat.st_mtime_ns, Path(entry.path), name,
                              (stat.st_size, stat.st_mtime_ns)))
    return found


def local_job_arn(job_name: str) -> str:
    return f"arn:aws:sagemaker:local:000000000000:processing-job/{job_name.lower()}"


def _signal_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


def _die_with_parent() -> None:
    """Linux: the instance gets SIGKILL if the supervisor dies, so nothing is orphaned."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def main(argv: list[str]) -> int:
    paths = JobPaths(Path(argv[0]))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    Supervisor(paths).run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
