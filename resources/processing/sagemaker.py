"""``SageMakerProcessing``: processing jobs on SageMaker, through boto3.

boto3's own client in standard retry mode (throttling is retried by botocore),
the job's container output read from CloudWatch Logs, links to the console, and
the AWS-only parts of the request: image, role, volume, KMS keys and network.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config
from pydantic import Field

from resources.container_launch import ContainerLaunch, custom_image, framework_image
from resources.log_relay import CloudWatchLogSource, LogSource
from resources.processing.backend import JobSettings, ProcessingBackend
from resources.processing_request import PLACEHOLDER_ROLE_ARN, NetworkSpec
from resources.storage import ObjectStorage

SAGEMAKER_BACKEND = "sagemaker"


class SageMakerProcessing(ProcessingBackend):
    """Runs SageMaker Processing jobs with boto3."""

    region_name: str | None = Field(
        default=None, description="AWS region of the SageMaker jobs (default: boto3's)."
    )
    endpoint_url: str | None = Field(
        default=None, description="Custom SageMaker API endpoint (tests, VPC endpoints)."
    )
    logs_endpoint_url: str | None = Field(
        default=None,
        description="Custom CloudWatch Logs endpoint the containers' log lines are read "
        "from for the run log (tests, VPC endpoints).",
    )
    max_attempts: int = Field(
        default=10,
        description="botocore standard retry mode: attempts per API call (throttling and "
        "transient errors are retried with backoff).",
    )
    image_uri: str = Field(
        default="",
        description="Container image built from container/Dockerfile. Empty: the prebuilt "
        "SageMaker framework image with our code as an input (XGBoost and scikit-learn "
        "models only).",
    )
    role_arn: str = Field(
        default=PLACEHOLDER_ROLE_ARN, description="Execution role of the jobs."
    )
    volume_size_gb: int = Field(default=30, description="EBS volume per instance, in GB.")
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

    @property
    def backend_name(self) -> str:
        return SAGEMAKER_BACKEND

    def open_client(self, storage: ObjectStorage) -> Any:
        return boto3.client(
            "sagemaker", region_name=self.region_name, endpoint_url=self.endpoint_url,
            config=Config(retries={"mode": "standard", "max_attempts": self.max_attempts}),
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
        """CloudWatch Logs of the job; None for a client that is not boto3's SageMaker
        client (a test's stand-in: nothing to read)."""
        meta = getattr(client, "meta", None)
        if meta is None or meta.service_model.service_name != "sagemaker":
            return None
        return CloudWatchLogSource(self.logs_client(meta.region_name), job_name,
                                   instance_count)

    def job_links(self, job_name: str) -> dict[str, str]:
        region = self._region()
        console = f"https://{region}.console.aws.amazon.com"
        return {
            "console_url": f"{console}/sagemaker/home?region={region}#/processing-jobs/"
                           f"{job_name}",
            "logs_url": f"{console}/cloudwatch/home?region={region}#logsV2:log-groups/"
                        "log-group/$252Faws$252Fsagemaker$252FProcessingJobs$3F"
                        f"logStreamNameFilter$3D{job_name}$252F",
        }

    def container_launch(self, framework: str, storage: ObjectStorage) -> ContainerLaunch:
        if self.image_uri:
            return custom_image(self.image_uri)
        return framework_image(framework, self._region(), storage)

    def job_settings(self) -> JobSettings:
        return JobSettings(
            volume_size_gb=self.volume_size_gb, volume_kms_key_id=self.volume_kms_key_id,
            output_kms_key_id=self.output_kms_key_id,
            network=NetworkSpec(
                subnets=tuple(self.subnets), security_group_ids=tuple(self.security_group_ids),
                enable_network_isolation=self.enable_network_isolation,
                enable_inter_container_traffic_encryption=(
                    self.enable_inter_container_traffic_encryption),
            ),
            role_arn=self.role_arn, max_runtime_seconds=self.max_runtime_seconds,
        )

    def _region(self) -> str:
        return self.region_name or boto3.session.Session().region_name or "us-east-1"
