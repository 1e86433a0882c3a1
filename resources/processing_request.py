"""Build the ``create_processing_job`` request: one pure function for every backend.

The local runner and SageMaker receive the very same dict, so what is tested
locally is what production sends. Names and limits follow the SageMaker API
model (botocore's ``sagemaker`` service, 2017-07-24).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Literal

from container.contract import PROCESSING_ROOT

JOB_NAME_MAX = 63
_JOB_NAME_INVALID = re.compile(r"[^a-zA-Z0-9-]+")
LOCAL_PATH_PREFIX = PROCESSING_ROOT + "/"
MAX_CHANNELS = 10
MAX_ENVIRONMENT = 100
MAX_TAGS = 50
PLACEHOLDER_ROLE_ARN = "arn:aws:iam::000000000000:role/local-processing"


@dataclass(frozen=True)
class InputChannel:
    name: str
    s3_uri: str
    local_path: str
    distribution: Literal["FullyReplicated", "ShardedByS3Key"] = "FullyReplicated"
    data_type: Literal["S3Prefix", "ManifestFile"] = "S3Prefix"
    input_mode: Literal["File", "Pipe"] = "File"


@dataclass(frozen=True)
class OutputChannel:
    name: str
    s3_uri: str
    local_path: str
    upload_mode: Literal["Continuous", "EndOfJob"] = "Continuous"


@dataclass(frozen=True)
class ClusterSpec:
    instance_type: str
    instance_count: int
    volume_size_gb: int = 30
    volume_kms_key_id: str | None = None


@dataclass(frozen=True)
class NetworkSpec:
    """VPC placement and isolation of the job's instances (all optional)."""

    subnets: tuple[str, ...] = ()
    security_group_ids: tuple[str, ...] = ()
    enable_network_isolation: bool = False
    enable_inter_container_traffic_encryption: bool = False

    def request(self) -> dict | None:
        config: dict = {}
        if self.subnets or self.security_group_ids:
            if not (self.subnets and self.security_group_ids):
                raise ValueError("a VPC config needs both subnets and security group ids")
            config["VpcConfig"] = {"Subnets": list(self.subnets),
                                   "SecurityGroupIds": list(self.security_group_ids)}
        if self.enable_network_isolation:
            config["EnableNetworkIsolation"] = True
        if self.enable_inter_container_traffic_encryption:
            config["EnableInterContainerTrafficEncryption"] = True
        return config or None


@dataclass(frozen=True)
class ProcessingJobSpec:
    """Everything one processing job needs, in our words."""

    job_name: str
    image_uri: str
    entrypoint: list[str]
    arguments: list[str]
    inputs: list[InputChannel]
    outputs: list[OutputChannel]
    cluster: ClusterSpec
    role_arn: str = PLACEHOLDER_ROLE_ARN
    max_runtime_seconds: int = 24 * 3600
    environment: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    output_kms_key_id: str | None = None
    network: NetworkSpec = field(default_factory=NetworkSpec)


def processing_job_name(*parts: str, attempt: int) -> str:
    """A valid, deterministic job name, unique per attempt.

    Parts are joined with ``-`` and reduced to the API's alphabet; a name that
    would pass 63 characters is cut and made unique again by a hash of the full
    name, so two long partitions never share a job name.
    """
    if attempt < 1:
        raise ValueError(f"attempt must be at least 1, got {attempt}")
    suffix = f"-a{attempt}"
    base = "-".join(_JOB_NAME_INVALID.sub("-", p).strip("-") for p in parts if p)
    base = re.sub(r"-{2,}", "-", base).strip("-") or "job"
    if len(base) + len(suffix) > JOB_NAME_MAX:
        digest = hashlib.sha256(base.encode()).hexdigest()[:8]
        keep = JOB_NAME_MAX - len(suffix) - len(digest) - 1
        base = f"{base[:keep].rstrip('-')}-{digest}"
    return f"{base}{suffix}"


def build_processing_job_request(spec: ProcessingJobSpec) -> dict:
    """The ``create_processing_job`` request for ``spec``; raises ValueError on limits."""
    _check_limits(spec)
    cluster: dict = {
        "InstanceCount": spec.cluster.instance_count,
        "InstanceType": spec.cluster.instance_type,
        "VolumeSizeInGB": spec.cluster.volume_size_gb,
    }
    if spec.cluster.volume_kms_key_id:
        cluster["VolumeKmsKeyId"] = spec.cluster.volume_kms_key_id
    output_config: dict = {
        "Outputs": [
            {
                "OutputName": o.name,
                "S3Output": {"S3Uri": o.s3_uri, "LocalPath": o.local_path,
                             "S3UploadMode": o.upload_mode},
            }
            for o in spec.outputs
        ]
    }
    if spec.output_kms_key_id:
        output_config["KmsKeyId"] = spec.output_kms_key_id
    request: dict = {
        "ProcessingJobName": spec.job_name,
        "ProcessingInputs": [
            {
                "InputName": i.name,
                "S3Input": {
                    "S3Uri": i.s3_uri,
                    "LocalPath": i.local_path,
                    "S3DataType": i.data_type,
                    "S3InputMode": i.input_mode,
                    "S3DataDistributionType": i.distribution,
                },
            }
            for i in spec.inputs
        ],
        "ProcessingOutputConfig": output_config,
        "ProcessingResources": {"ClusterConfig": cluster},
        "StoppingCondition": {"MaxRuntimeInSeconds": spec.max_runtime_seconds},
        "AppSpecification": {
            "ImageUri": spec.image_uri,
            "ContainerEntrypoint": list(spec.entrypoint),
        },
        "RoleArn": spec.role_arn,
    }
    if spec.arguments:
        request["AppSpecification"]["ContainerArguments"] = list(spec.arguments)
    if spec.environment:
        request["Environment"] = dict(spec.environment)
    network = spec.network.request()
    if network:
        request["NetworkConfig"] = network
    if spec.tags:
        request["Tags"] = [{"Key": k, "Value": v} for k, v in spec.tags.items()]
    return request


def _check_limits(spec: ProcessingJobSpec) -> None:
    """Limits of the API that botocore's validation does not check."""
    if not re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", spec.job_name):
        raise ValueError(f"invalid processing job name {spec.job_name!r}")
    if len(spec.inputs) > MAX_CHANNELS or len(spec.outputs) > MAX_CHANNELS:
        raise ValueError(f"at most {MAX_CHANNELS} inputs and {MAX_CHANNELS} outputs")
    for channel in [*spec.inputs, *spec.outputs]:
        if not channel.local_path.startswith(LOCAL_PATH_PREFIX):
            raise ValueError(
                f"channel {channel.name!r}: LocalPath {channel.local_path!r} must start with "
                f"{LOCAL_PATH_PREFIX}"
            )
    if not 1 <= spec.cluster.instance_count <= 100:
        raise ValueError(
            f"instance_count {spec.cluster.instance_count} is outside 1..100 (the API's limit)"
        )
    if not 1 <= spec.max_runtime_seconds <= 777_600:
        raise ValueError(f"max_runtime_seconds {spec.max_runtime_seconds} is outside 1..777600")
    if len(spec.environment) > MAX_ENVIRONMENT:
        raise ValueError(f"at most {MAX_ENVIRONMENT} environment variables")
    for key, value in spec.environment.items():
        if not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", key) or len(key) > 256 or len(value) > 256:
            raise ValueError(f"environment variable {key!r} breaks the API's name/length rules")
    if len(spec.tags) > MAX_TAGS:
        raise ValueError(f"at most {MAX_TAGS} tags")
