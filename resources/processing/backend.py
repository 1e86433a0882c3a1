"""``ProcessingBackend``: what every way of running processing jobs shares.

A backend is a Dagster resource (the ``processing`` resource key) that knows how
to reach its jobs: it opens the client they are submitted to, says where their
container output can be read and where a person can look at them, which
container image starts them and which settings of the request are its own.
``LocalProcessing`` runs them on this machine, ``SageMakerProcessing`` on AWS;
each declares only its own settings, so a local user never sees a VPC subnet
and an AWS user never sees the local runner's folders.

Everything else (quota back-off, polling, the log relay, stopping on interrupt)
is one piece of code for both: ``resources.processing.jobs.ProcessingJobs``,
which a backend hands out bound to the client it opened.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
from pydantic import ConfigDict, Field, field_validator

from resources.container_launch import ContainerLaunch
from resources.log_relay import LogSource
from resources.processing.jobs import ProcessingJobs
from resources.processing_request import PLACEHOLDER_ROLE_ARN, NetworkSpec
from resources.storage import ObjectStorage


@dataclass(frozen=True)
class JobSettings:
    """The parts of a ``create_processing_job`` request that come from the backend's
    settings rather than from the job (volume, keys, network, role, runtime)."""

    volume_size_gb: int = 30
    volume_kms_key_id: str | None = None
    output_kms_key_id: str | None = None
    network: NetworkSpec = field(default_factory=NetworkSpec)
    role_arn: str = PLACEHOLDER_ROLE_ARN
    max_runtime_seconds: int = 24 * 3600


class ProcessingBackend(dg.ConfigurableResource):
    """Runs processing jobs; the settings every backend shares are declared here."""

    # a setting of the other backend, or a misspelt one, is refused by name (pydantic
    # lets Dagster's resources ignore unknown keywords otherwise: the old
    # ``local_work_dir`` would silently do nothing)
    model_config = ConfigDict(extra="forbid")

    quota_backoff_seconds: float = Field(
        default=60.0,
        description="First wait after ResourceLimitExceeded (instance quota) before "
        "resubmitting; doubles up to 10 minutes per wait.",
    )
    quota_wait_seconds: float = Field(
        default=6 * 3600,
        description="Give up resubmitting after the instance quota stayed exhausted this "
        "long; also the longest wait for instance admission.",
    )
    instance_quotas: dict[str, int] = Field(
        default_factory=dict,
        description="Instance admission: the account's processing instance quota per "
        "instance type, e.g. {'ml.m5.xlarge': 20}. A job starts only when its instances fit "
        "next to those of running jobs (admission is atomic across runs, fair per type, "
        "recorded in the job store); a waiting step logs what it waits for. A type not "
        "listed has no admission control. Empty (the default): none at all. From the "
        "environment: BATCH_INSTANCE_QUOTAS='ml.m5.xlarge=20,ml.m5.large=10'.",
    )
    instance_prices: dict[str, float] = Field(
        default_factory=dict,
        description="Cost estimates: USD per instance-hour per processing instance type, "
        "e.g. {'ml.m5.xlarge': 0.23}, maintained by you from "
        "https://aws.amazon.com/sagemaker/pricing/ (Processing, your region). Every scoring "
        "materialization then records its job's estimated cost, the model's share and the "
        "day's total. A type not listed: billed instance-seconds only. From the "
        "environment: BATCH_INSTANCE_PRICES='ml.m5.xlarge=0.23,ml.m5.large=0.115'.",
    )
    job_name_prefix: str = Field(
        default="",
        description="Prefix of every job name, to keep deployments sharing an AWS account "
        "(or a local work folder) apart: job names are unique per account and region.",
    )
    max_runtime_seconds: int = Field(
        default=24 * 3600, description="StoppingCondition.MaxRuntimeInSeconds of each job."
    )
    poll_interval_seconds: float = Field(
        default=2.0, description="Seconds between describe_processing_job calls while waiting."
    )
    relay_container_logs: bool = Field(
        default=True,
        description="While waiting, relay the containers' own log lines into the step's "
        "run log: per instance the latest progress line at most every 15 s, its final "
        "summary, and every error line and traceback. Read from the local runner's "
        "instance logs, or from CloudWatch Logs (/aws/sagemaker/ProcessingJobs).",
    )
    log_relay_seconds: float = Field(
        default=10.0, gt=0,
        description="Read new container log lines at most this often while waiting. On "
        "AWS a read is one GetLogEvents call per instance (plus DescribeLogStreams until "
        "every instance's stream is found), and CloudWatch Logs' per-account request "
        "quotas are shared by every running job.",
    )
    wait_timeout_seconds: float = Field(
        default=48 * 3600,
        description="Give up waiting (and stop the job) after this many seconds.",
    )

    @field_validator("instance_quotas")
    @classmethod
    def _positive_quotas(cls, quotas: dict[str, int]) -> dict[str, int]:
        bad = {name: value for name, value in quotas.items() if value < 1}
        if bad:
            raise ValueError(f"instance_quotas must be at least 1 instance per type, got {bad}: "
                             "remove a type to turn its admission control off")
        return quotas

    @property
    @abstractmethod
    def backend_name(self) -> str:
        """'local' or 'sagemaker': recorded with every job and shown in the metadata."""

    @abstractmethod
    def open_client(self, storage: ObjectStorage) -> Any:
        """A client with boto3's SageMaker processing methods (create, describe, stop)."""

    @abstractmethod
    def log_source(self, client: Any, job_name: str,
                   instance_count: int | None = None) -> LogSource | None:
        """Where the job's container output can be read (None: nowhere)."""

    @abstractmethod
    def job_links(self, job_name: str) -> dict[str, str]:
        """Where a person can look at the job: the console and the logs, or its folder."""

    @abstractmethod
    def container_launch(self, framework: str, storage: ObjectStorage) -> ContainerLaunch:
        """Image, entrypoint and code input of the container for a model's framework."""

    @abstractmethod
    def job_settings(self) -> JobSettings:
        """The request's volume, keys, network, role and runtime."""

    def jobs(self, storage: ObjectStorage) -> ProcessingJobs:
        """Submit, wait for and stop jobs through a client this backend opens."""
        return ProcessingJobs(self, self.open_client(storage))
