"""``ProcessingJobs``: submit a processing job, wait for it, stop it on interrupt.

One backend's jobs through the one client it opened (boto3's SageMaker client,
or the local runner's client with the same methods). Everything here, from
quota back-off to polling to the log relay to interruption, is the same code
for every backend; what differs (the client, where logs are, the links) is
asked of the backend.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any, Protocol

import dagster as dg
from botocore.exceptions import ClientError

from resources.job_status import STOPPING, TERMINAL
from resources.log_relay import LogRelay, LogSource


class JobsBackend(Protocol):
    """What ``ProcessingJobs`` asks of its backend (``ProcessingBackend`` has it all)."""

    quota_backoff_seconds: float
    quota_wait_seconds: float
    poll_interval_seconds: float
    wait_timeout_seconds: float
    relay_container_logs: bool
    log_relay_seconds: float

    def log_source(self, client: Any, job_name: str,
                   instance_count: int | None = None) -> LogSource | None: ...


class ProcessingJobError(Exception):
    """A processing job ended without completing; the message names job and reason."""

    def __init__(self, message: str, description: dict) -> None:
        super().__init__(message)
        self.description = description


class ProcessingJobs:
    """The jobs of ``backend``, reached through ``client`` (which this object owns)."""

    def __init__(self, backend: JobsBackend, client: Any) -> None:
        self.backend = backend
        self.client = client

    def describe(self, job_name: str) -> dict | None:
        """The backend's description of a job, or None if it does not know the job."""
        try:
            return self.client.describe_processing_job(ProcessingJobName=job_name)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ValidationException":
                raise
            return None

    def submit(self, request: dict, log: Any = None) -> bool:
        """Create the job; False if a job with this name exists already (adopted).

        ``ResourceLimitExceeded`` means the account's instance quota is in use by
        other jobs: wait with exponential backoff and resubmit, rather than fail
        the run, until ``quota_wait_seconds`` have passed.
        """
        deadline = time.monotonic() + self.backend.quota_wait_seconds
        delay = self.backend.quota_backoff_seconds
        while True:
            try:
                self.client.create_processing_job(**request)
                return True
            except ClientError as exc:
                code = exc.response["Error"]["Code"]
                if code == "ResourceInUse":
                    return False
                if code != "ResourceLimitExceeded" or time.monotonic() + delay > deadline:
                    raise
                if log is not None:
                    log.warning(
                        f"job {request['ProcessingJobName']}: instance quota in use "
                        f"({exc.response['Error'].get('Message', '')}); retrying in {delay:.0f}s"
                    )
                time.sleep(delay)
                delay = min(delay * 2, 600.0)

    def wait(
        self,
        job_name: str,
        log: Any,
        on_status: Callable[[str, dict], None] | None = None,
        stop_on_interrupt: bool = True,
    ) -> dict:
        """Poll until the job ends; returns the last description.

        Status changes are logged and passed to ``on_status``; the containers' own
        progress, summaries and errors are relayed into ``log`` (``LogRelay``, read
        between two polls, drained once the job has ended). If the Dagster run
        is interrupted (or the wait times out) the job is stopped first, so no
        instance keeps running, and billing, for a run that no longer exists;
        unless ``stop_on_interrupt`` is false (the job belongs to another live run
        that this one only watches).
        """
        deadline = time.monotonic() + self.backend.wait_timeout_seconds
        last_status = None
        relay: LogRelay | None = None
        try:
            while True:
                description = self.client.describe_processing_job(ProcessingJobName=job_name)
                status = description["ProcessingJobStatus"]
                if last_status is None:
                    relay = self._log_relay(job_name, log, description)
                if relay is not None and status in TERMINAL:
                    relay.drain()  # before the status line: "Completed" follows summaries
                elif relay is not None:
                    relay.poll()
                if status != last_status:
                    log.info(f"processing job {job_name}: {status}")
                    if on_status is not None:
                        on_status(status, description)
                    last_status = status
                if status in TERMINAL:
                    return description
                if time.monotonic() > deadline:
                    self.stop(job_name, log)
                    raise ProcessingJobError(
                        f"processing job {job_name} did not finish within "
                        f"{self.backend.wait_timeout_seconds:.0f}s; it was stopped",
                        description,
                    )
                time.sleep(self.backend.poll_interval_seconds)
        except (dg.DagsterExecutionInterruptedError, KeyboardInterrupt):
            if not stop_on_interrupt:
                log.warning(f"run interrupted: job {job_name} belongs to another run and "
                            "keeps running")
                raise
            log.warning(f"run interrupted: stopping processing job {job_name}")
            self.stop(job_name, log)
            if on_status is not None:
                with contextlib.suppress(Exception):
                    on_status(STOPPING, {"ProcessingJobName": job_name})
            raise

    def stop(self, job_name: str, log: Any) -> None:
        try:
            self.client.stop_processing_job(ProcessingJobName=job_name)
        except ClientError as exc:
            # already ended: nothing left to stop
            log.info(f"stop {job_name}: {exc.response['Error'].get('Message', exc)}")

    def _log_relay(self, job_name: str, log: Any, description: dict) -> LogRelay | None:
        if not self.backend.relay_container_logs:
            return None
        cluster = description.get("ProcessingResources", {}).get("ClusterConfig", {})
        try:
            source = self.backend.log_source(self.client, job_name,
                                             cluster.get("InstanceCount"))
        except Exception as exc:  # progress lines are a convenience: never fail the wait
            log.warning(f"job {job_name}: no container log lines in the run log: cannot "
                        f"create a CloudWatch Logs client ({type(exc).__name__}: {exc}); "
                        "check region_name and logs_endpoint_url")
            return None
        if source is None:
            return None
        return LogRelay(source, log, job_name, read_interval=self.backend.log_relay_seconds)
