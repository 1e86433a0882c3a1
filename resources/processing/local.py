"""``LocalProcessing``: the embedded default, processing jobs as local processes.

The local runner (``resources.local_processing``) receives the very same
``create_processing_job`` request SageMaker would and runs it as N local
instances, so what is tested here is what production sends. Its settings are
the runner's own (folders, stop grace, an optional account-quota stand-in); the
request's AWS-only parts (role, network, keys) keep their neutral defaults.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from resources.container_launch import ContainerLaunch, custom_image
from resources.local_processing.client import LocalProcessingClient
from resources.log_relay import LocalLogSource, LogSource
from resources.processing.backend import JobSettings, ProcessingBackend
from resources.storage import ObjectStorage

LOCAL_BACKEND = "local"
LOCAL_IMAGE = "batch-inference:local"


class LocalProcessing(ProcessingBackend):
    """Runs processing jobs on this machine (no AWS)."""

    work_dir: str = Field(
        default=".data/processing",
        description="Folder for job state, instance folders and logs.",
    )
    keep_instance_dirs: bool = Field(
        default=False,
        description="Keep each instance's /opt/ml folder after the job (for debugging); "
        "by default only logs and status are kept.",
    )
    stop_grace_seconds: float = Field(
        default=10.0,
        description="Seconds between SIGTERM and SIGKILL when a job is stopped.",
    )
    instance_quota: int | None = Field(
        default=None,
        description="Instances of one type that running jobs may use together, as "
        "SageMaker's per-account quota; a job beyond it is refused with "
        "ResourceLimitExceeded (and resubmitted after quota_backoff_seconds). None: no "
        "limit.",
    )

    @property
    def backend_name(self) -> str:
        return LOCAL_BACKEND

    def open_client(self, storage: ObjectStorage) -> LocalProcessingClient:
        return LocalProcessingClient(
            storage, Path(self.work_dir), keep_instance_dirs=self.keep_instance_dirs,
            stop_grace_seconds=self.stop_grace_seconds, instance_quota=self.instance_quota,
        )

    def log_source(self, client: LocalProcessingClient, job_name: str,
                   instance_count: int | None = None) -> LogSource | None:
        return LocalLogSource(client.logs_dir(job_name))

    def job_links(self, job_name: str) -> dict[str, str]:
        return {"job_dir": str(Path(self.work_dir).resolve() / job_name)}

    def container_launch(self, framework: str, storage: ObjectStorage) -> ContainerLaunch:
        """The runner starts the entrypoint in this Python environment: no image."""
        return custom_image(LOCAL_IMAGE)

    def job_settings(self) -> JobSettings:
        return JobSettings(max_runtime_seconds=self.max_runtime_seconds)
