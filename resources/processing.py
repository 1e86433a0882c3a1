"""``SageMakerProcessing``: submit a processing job, wait for it, stop it on interrupt.

The resource talks to a client with boto3's SageMaker interface. In the embedded
default that client is ``LocalProcessingClient``, which runs the request as local
processes; on AWS it is boto3's own client. Everything else here, from polling to
interruption, is the same code for both.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
from botocore.exceptions import ClientError
from pydantic import Field

from resources.local_processing.client import LocalProcessingClient
from resources.processing_request import PLACEHOLDER_ROLE_ARN
from resources.storage import ObjectStorage

TERMINAL_STATUSES = frozenset({"Completed", "Failed", "Stopped"})
LOCAL_BACKEND = "local"


class ProcessingJobError(Exception):
    """A processing job ended without completing; the message names job and reason."""

    def __init__(self, message: str, description: dict) -> None:
        super().__init__(message)
        self.description = description


class SageMakerProcessing(dg.ConfigurableResource):
    """Runs SageMaker Processing jobs (by default on the local runner)."""

    image_uri: str = Field(
        default="batch-inference:local",
        description="Container image with the `container` package. The local runner runs "
        "the entrypoint in this Python environment instead of the image.",
    )
    role_arn: str = Field(
        default=PLACEHOLDER_ROLE_ARN,
        description="Execution role of the jobs (any valid ARN works for the local runner).",
    )
    volume_size_gb: int = Field(default=30, description="EBS volume per instance, in GB.")
    max_runtime_seconds: int = Field(
        default=24 * 3600, description="StoppingCondition.MaxRuntimeInSeconds of each job."
    )
    poll_interval_seconds: float = Field(
        default=2.0, description="Seconds between describe_processing_job calls while waiting."
    )
    wait_timeout_seconds: float = Field(
        default=48 * 3600,
        description="Give up waiting (and stop the job) after this many seconds.",
    )
    local_work_dir: str = Field(
        default=".data/processing",
        description="Local runner: folder for job state, instance folders and logs.",
    )
    local_keep_instance_dirs: bool = Field(
        default=False,
        description="Local runner: keep each instance's /opt/ml folder after the job "
        "(for debugging); by default only logs and status are kept.",
    )
    local_stop_grace_seconds: float = Field(
        default=10.0,
        description="Local runner: seconds between SIGTERM and SIGKILL when a job is stopped.",
    )

    @property
    def backend_name(self) -> str:
        return LOCAL_BACKEND

    def client(self, storage: ObjectStorage) -> Any:
        """A client with boto3's SageMaker processing methods."""
        return LocalProcessingClient(
            storage, Path(self.local_work_dir),
            keep_instance_dirs=self.local_keep_instance_dirs,
            stop_grace_seconds=self.local_stop_grace_seconds,
        )

    def job_links(self, job_name: str, client: Any) -> dict[str, str]:
        """Where a person can look at the job (local: its folder with logs)."""
        if isinstance(client, LocalProcessingClient):
            return {"job_dir": str(client.job_dir(job_name))}
        return {}

    def submit(self, client: Any, request: dict) -> bool:
        """Create the job; False if a job with this name exists already (adopted)."""
        try:
            client.create_processing_job(**request)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ResourceInUse":
                return False
            raise
        return True

    def wait(
        self,
        client: Any,
        job_name: str,
        log: Any,
        on_status: Callable[[str, dict], None] | None = None,
    ) -> dict:
        """Poll until the job ends; returns the last description.

        Status changes are logged and passed to ``on_status``. If the Dagster run
        is interrupted (or the wait times out) the job is stopped first, so no
        instance keeps running, and billing, for a run that no longer exists.
        """
        deadline = time.monotonic() + self.wait_timeout_seconds
        last_status = None
        try:
            while True:
                description = client.describe_processing_job(ProcessingJobName=job_name)
                status = description["ProcessingJobStatus"]
                if status != last_status:
                    log.info(f"processing job {job_name}: {status}")
                    if on_status is not None:
                        on_status(status, description)
                    last_status = status
                if status in TERMINAL_STATUSES:
                    return description
                if time.monotonic() > deadline:
                    self.stop(client, job_name, log)
                    raise ProcessingJobError(
                        f"processing job {job_name} did not finish within "
                        f"{self.wait_timeout_seconds:.0f}s; it was stopped", description,
                    )
                time.sleep(self.poll_interval_seconds)
        except (dg.DagsterExecutionInterruptedError, KeyboardInterrupt):
            log.warning(f"run interrupted: stopping processing job {job_name}")
            self.stop(client, job_name, log)
            if on_status is not None:
                with contextlib.suppress(Exception):
                    on_status("Stopping", {"ProcessingJobName": job_name})
            raise

    def stop(self, client: Any, job_name: str, log: Any) -> None:
        try:
            client.stop_processing_job(ProcessingJobName=job_name)
        except ClientError as exc:
            # already ended: nothing left to stop
            log.info(f"stop {job_name}: {exc.response['Error'].get('Message', exc)}")
