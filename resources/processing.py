"""``SageMakerProcessing``: submit a processing job, wait for it, stop it on interrupt.

The resource talks to a client with boto3's SageMaker interface. In the embedded
default (``backend="local"``) that client is ``LocalProcessingClient``, which runs
the request as local processes; with ``backend="sagemaker"`` it is boto3's own
client (standard retry mode, so throttling is retried by botocore). Everything
else, from quota back-off to polling to interruption, is the same code for both.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import boto3
import dagster as dg
from botocore.config import Config
from botocore.exceptions import ClientError
from pydantic import Field, field_validator

from resources.container_launch import ContainerLaunch, custom_image, framework_image
from resources.job_status import STOPPING, TERMINAL
from resources.local_processing.client import LocalProcessingClient
from resources.log_relay import CloudWatchLogSource, LocalLogSource, LogRelay, LogSource
from resources.processing_request import PLACEHOLDER_ROLE_ARN, NetworkSpec
from resources.storage import ObjectStorage

LOCAL_BACKEND = "local"
SAGEMAKER_BACKEND = "sagemaker"
LOCAL_IMAGE = "batch-inference:local"


class ProcessingJobError(Exception):
    """A processing job ended without completing; the message names job and reason."""

    def __init__(self, message: str, description: dict) -> None:
        super().__init__(message)
        self.description = description


class SageMakerProcessing(dg.ConfigurableResource):
    """Runs SageMaker Processing jobs (by default on the local runner)."""

    backend: Literal["local", "sagemaker"] = Field(
        default=LOCAL_BACKEND,
        description="'local': run jobs as local processes (no AWS); 'sagemaker': submit "
        "them to SageMaker Processing with boto3.",
    )
    region_name: str | None = Field(
        default=None, description="AWS region of the SageMaker jobs (default: boto3's)."
    )
    endpoint_url: str | None = Field(
        default=None, description="Custom SageMaker API endpoint (tests, VPC endpoints)."
    )
    logs_endpoint_url: str | None = Field(
        default=None,
        description="Custom CloudWatch Logs endpoint the containers' log lines are read "
        "from for the run log (tests, VPC endpoints); sagemaker backend only.",
    )
    max_attempts: int = Field(
        default=10,
        description="botocore standard retry mode: attempts per API call (throttling and "
        "transient errors are retried with backoff).",
    )
    quota_backoff_seconds: float = Field(
        default=60.0,
        description="First wait after ResourceLimitExceeded (instance quota) before "
        "resubmitting; doubles up to 10 minutes per wait.",
    )
    quota_wait_seconds: float = Field(
        default=6 * 3600,
        description="Give up resubmitting after the instance quota stayed exhausted this long.",
    )
    instance_quotas: dict[str, int] = Field(
        default_factory=dict,
        description="Instance admission: the account's processing instance quota per "
        "instance type, e.g. {'ml.m5.xlarge': 20}. A job starts only when its instances fit "
        "next to those of running jobs (admission is atomic across runs, fair per type, "
        "recorded in the job store); a waiting step logs what it waits for. A type not "
        "listed has no admission control. Empty (the default): none at all, as before. On "
        "AWS: BATCH_INSTANCE_QUOTAS='ml.m5.xlarge=20,ml.m5.large=10'.",
    )
    instance_prices: dict[str, float] = Field(
        default_factory=dict,
        description="Cost estimates: USD per instance-hour per processing instance type, "
        "e.g. {'ml.m5.xlarge': 0.23}, maintained by you from "
        "https://aws.amazon.com/sagemaker/pricing/ (Processing, your region). Every scoring "
        "materialization then records its job's estimated cost, the model's share and the "
        "day's total. A type not listed: billed instance-seconds only. On AWS: "
        "BATCH_INSTANCE_PRICES='ml.m5.xlarge=0.23,ml.m5.large=0.115'.",
    )
    image_uri: str = Field(
        default="",
        description="Container image built from container/Dockerfile. Empty with the "
        "sagemaker backend: the prebuilt SageMaker framework image with our code as an "
        "input. The local runner runs the entrypoint in this Python environment instead.",
    )
    volume_kms_key_id: str | None = Field(
        default=None, description="KMS key that encrypts the instances' storage volumes."
    )
    output_kms_key_id: str | None = Field(
        default=None, description="KMS key that encrypts the job's outputs in S3."
    )
    subnets: list[str] = Field(
        default_factory=list, description="VPC subnets of the instances (with security groups)."
    )
    security_group_ids: list[str] = Field(
        default_factory=list, description="VPC security groups of the instances."
    )
    enable_network_isolation: bool = Field(
        default=False,
        description="No outbound network from the container (inputs and outputs still move).",
    )
    enable_inter_container_traffic_encryption: bool = Field(
        default=False, description="Encrypt traffic between the job's instances."
    )
    job_name_prefix: str = Field(
        default="",
        description="Prefix of every job name, to keep deployments sharing an AWS account "
        "apart (job names are unique per account and region).",
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
    local_instance_quota: int | None = Field(
        default=None,
        description="Local runner: instances of one type that running jobs may use together, "
        "as SageMaker's per-account quota; a job beyond it is refused with "
        "ResourceLimitExceeded (and resubmitted after quota_backoff_seconds). None: no limit.",
    )

    @property
    def backend_name(self) -> str:
        return self.backend

    @field_validator("instance_quotas")
    @classmethod
    def _positive_quotas(cls, quotas: dict[str, int]) -> dict[str, int]:
        bad = {name: value for name, value in quotas.items() if value < 1}
        if bad:
            raise ValueError(f"instance_quotas must be at least 1 instance per type, got {bad}: "
                             "remove a type to turn its admission control off")
        return quotas

    def network(self) -> NetworkSpec:
        return NetworkSpec(
            subnets=tuple(self.subnets), security_group_ids=tuple(self.security_group_ids),
            enable_network_isolation=self.enable_network_isolation,
            enable_inter_container_traffic_encryption=(
                self.enable_inter_container_traffic_encryption),
        )

    def client(self, storage: ObjectStorage) -> Any:
        """A client with boto3's SageMaker processing methods."""
        if self.backend == SAGEMAKER_BACKEND:
            return boto3.client(
                "sagemaker", region_name=self.region_name, endpoint_url=self.endpoint_url,
                config=Config(retries={"mode": "standard", "max_attempts": self.max_attempts}),
            )
        return LocalProcessingClient(
            storage, Path(self.local_work_dir),
            keep_instance_dirs=self.local_keep_instance_dirs,
            stop_grace_seconds=self.local_stop_grace_seconds,
            instance_quota=self.local_instance_quota,
        )

    def logs_client(self, region_name: str | None = None) -> Any:
        """A boto3 CloudWatch Logs client for reading the jobs' container output.

        Short timeouts and two attempts: the reads feed the run log only, and a slow
        logs endpoint must not hold up the wait for the job.
        """
        return boto3.client(
            "logs", region_name=region_name or self.region_name,
            endpoint_url=self.logs_endpoint_url,
            config=Config(retries={"mode": "standard", "max_attempts": 2},
                          connect_timeout=5, read_timeout=10),
        )

    def log_source(self, client: Any, job_name: str,
                   instance_count: int | None = None) -> LogSource | None:
        """Where this job's container output can be read; None for a client that is
        neither the local runner nor boto3's SageMaker client (nothing to read)."""
        if isinstance(client, LocalProcessingClient):
            return LocalLogSource(client.logs_dir(job_name))
        meta = getattr(client, "meta", None)
        if (self.backend == SAGEMAKER_BACKEND and meta is not None
                and meta.service_model.service_name == "sagemaker"):
            return CloudWatchLogSource(self.logs_client(meta.region_name), job_name,
                                       instance_count)
        return None

    def _log_relay(self, client: Any, job_name: str, log: Any,
                   description: dict) -> LogRelay | None:
        if not self.relay_container_logs:
            return None
        cluster = description.get("ProcessingResources", {}).get("ClusterConfig", {})
        try:
            source = self.log_source(client, job_name, cluster.get("InstanceCount"))
        except Exception as exc:  # progress lines are a convenience: never fail the wait
            log.warning(f"job {job_name}: no container log lines in the run log: cannot "
                        f"create a CloudWatch Logs client ({type(exc).__name__}: {exc}); "
                        "check region_name and logs_endpoint_url")
            return None
        if source is None:
            return None
        return LogRelay(source, log, job_name, read_interval=self.log_relay_seconds)

    def container_launch(self, framework: str, storage: ObjectStorage) -> ContainerLaunch:
        """Image, entrypoint and code input of the container for a model's framework."""
        if self.image_uri or self.backend == LOCAL_BACKEND:
            return custom_image(self.image_uri or LOCAL_IMAGE)
        return framework_image(framework, self._region(), storage)

    def _region(self) -> str:
        return self.region_name or boto3.session.Session().region_name or "us-east-1"

    def job_links(self, job_name: str, client: Any) -> dict[str, str]:
        """Where a person can look at the job: the console and the logs (local: its folder)."""
        if self.backend == LOCAL_BACKEND:
            return {"job_dir": str(client.job_dir(job_name))}
        region = self._region()
        console = f"https://{region}.console.aws.amazon.com"
        return {
            "console_url": f"{console}/sagemaker/home?region={region}#/processing-jobs/"
                           f"{job_name}",
            "logs_url": f"{console}/cloudwatch/home?region={region}#logsV2:log-groups/"
                        "log-group/$252Faws$252Fsagemaker$252FProcessingJobs$3F"
                        f"logStreamNameFilter$3D{job_name}$252F",
        }

    def submit(self, client: Any, request: dict, log: Any = None) -> bool:
        """Create the job; False if a job with this name exists already (adopted).

        ``ResourceLimitExceeded`` means the account's instance quota is in use by
        other jobs: wait with exponential backoff and resubmit, rather than fail
        the run, until ``quota_wait_seconds`` have passed.
        """
        deadline = time.monotonic() + self.quota_wait_seconds
        delay = self.quota_backoff_seconds
        while True:
            try:
                client.create_processing_job(**request)
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
        client: Any,
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
        deadline = time.monotonic() + self.wait_timeout_seconds
        last_status = None
        relay: LogRelay | None = None
        try:
            while True:
                description = client.describe_processing_job(ProcessingJobName=job_name)
                status = description["ProcessingJobStatus"]
                if last_status is None:
                    relay = self._log_relay(client, job_name, log, description)
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
                    self.stop(client, job_name, log)
                    raise ProcessingJobError(
                        f"processing job {job_name} did not finish within "
                        f"{self.wait_timeout_seconds:.0f}s; it was stopped", description,
                    )
                time.sleep(self.poll_interval_seconds)
        except (dg.DagsterExecutionInterruptedError, KeyboardInterrupt):
            if not stop_on_interrupt:
                log.warning(f"run interrupted: job {job_name} belongs to another run and "
                            "keeps running")
                raise
            log.warning(f"run interrupted: stopping processing job {job_name}")
            self.stop(client, job_name, log)
            if on_status is not None:
                with contextlib.suppress(Exception):
                    on_status(STOPPING, {"ProcessingJobName": job_name})
            raise

    def stop(self, client: Any, job_name: str, log: Any) -> None:
        try:
            client.stop_processing_job(ProcessingJobName=job_name)
        except ClientError as exc:
            # already ended: nothing left to stop
            log.info(f"stop {job_name}: {exc.response['Error'].get('Message', exc)}")
