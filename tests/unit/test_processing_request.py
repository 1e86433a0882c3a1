"""The create_processing_job request: valid for the real API, names and limits."""

from __future__ import annotations

import re

import pytest
from botocore.exceptions import ParamValidationError

from resources.local_processing.client import validate_request
from resources.processing_request import (
    ClusterSpec,
    InputChannel,
    NetworkSpec,
    OutputChannel,
    ProcessingJobSpec,
    build_processing_job_request,
    processing_job_name,
)

NAME_PATTERN = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")


def spec(**overrides) -> ProcessingJobSpec:
    values = dict(
        job_name="pred-churn-xgb-20261101-a1",
        image_uri="123456789012.dkr.ecr.us-east-1.amazonaws.com/batch:1",
        entrypoint=["python3", "-m", "container"],
        arguments=["infer"],
        inputs=[
            InputChannel("data", "s3://b/jobs/j/inputs.manifest", "/opt/ml/processing/input/data",
                         distribution="ShardedByS3Key", data_type="ManifestFile"),
            InputChannel("model", "s3://b/models/m/v1/", "/opt/ml/processing/input/model"),
        ],
        outputs=[OutputChannel("predictions", "s3://b/predictions/m/dt=2026-11-01/",
                               "/opt/ml/processing/output/predictions")],
        cluster=ClusterSpec("ml.m5.xlarge", 4, 50, "arn:aws:kms:us-east-1:1:key/abc"),
        environment={"OMP_NUM_THREADS": "1"},
        tags={"dagster-asset": "predictions"},
        output_kms_key_id="arn:aws:kms:us-east-1:1:key/abc",
        network=NetworkSpec(subnets=("subnet-1",), security_group_ids=("sg-1",),
                            enable_network_isolation=True,
                            enable_inter_container_traffic_encryption=True),
    )
    values.update(overrides)
    return ProcessingJobSpec(**values)


def test_request_passes_botocore_validation_and_carries_every_setting():
    request = build_processing_job_request(spec())
    validate_request("CreateProcessingJob", request)
    data, model = request["ProcessingInputs"]
    assert data["S3Input"]["S3DataDistributionType"] == "ShardedByS3Key"
    assert data["S3Input"]["S3DataType"] == "ManifestFile"
    assert model["S3Input"]["S3DataDistributionType"] == "FullyReplicated"
    output = request["ProcessingOutputConfig"]
    assert output["Outputs"][0]["S3Output"]["S3UploadMode"] == "Continuous"
    assert output["KmsKeyId"].endswith("key/abc")
    assert request["ProcessingResources"]["ClusterConfig"] == {
        "InstanceCount": 4, "InstanceType": "ml.m5.xlarge", "VolumeSizeInGB": 50,
        "VolumeKmsKeyId": "arn:aws:kms:us-east-1:1:key/abc"}
    assert request["AppSpecification"]["ContainerArguments"] == ["infer"]
    assert request["Tags"] == [{"Key": "dagster-asset", "Value": "predictions"}]
    assert request["NetworkConfig"] == {
        "VpcConfig": {"Subnets": ["subnet-1"], "SecurityGroupIds": ["sg-1"]},
        "EnableNetworkIsolation": True, "EnableInterContainerTrafficEncryption": True}


def test_network_config_is_omitted_by_default_and_vpc_needs_both_lists():
    assert "NetworkConfig" not in build_processing_job_request(spec(network=NetworkSpec()))
    with pytest.raises(ValueError, match="both subnets and security group"):
        build_processing_job_request(spec(network=NetworkSpec(subnets=("subnet-1",))))


def test_botocore_rejects_a_malformed_request():
    request = build_processing_job_request(spec())
    request["ProcessingResources"]["ClusterConfig"]["InstanceCount"] = "four"
    with pytest.raises(ParamValidationError):
        validate_request("CreateProcessingJob", request)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"job_name": "bad_name"}, "invalid processing job name"),
        ({"cluster": ClusterSpec("ml.m5.xlarge", 101)}, "outside 1..100"),
        ({"max_runtime_seconds": 777_601}, "outside 1..777600"),
        ({"environment": {"1BAD": "x"}}, "environment variable"),
        ({"outputs": [OutputChannel("p", "s3://b/p/", "/tmp/out")]}, "must start with"),
    ],
)
def test_limits_of_the_api_are_enforced(overrides, message):
    with pytest.raises(ValueError, match=message):
        build_processing_job_request(spec(**overrides))


def test_job_names_are_valid_deterministic_and_unique_per_attempt():
    names = {processing_job_name("pred", "churn_xgb", "20261101", attempt=a) for a in range(1, 50)}
    assert len(names) == 49
    assert processing_job_name("pred", "churn_xgb", "20261101", attempt=3) == \
        "pred-churn-xgb-20261101-a3"
    for name in names:
        assert NAME_PATTERN.fullmatch(name) and len(name) <= 63


def test_long_names_are_cut_and_stay_distinct():
    long_a = processing_job_name("pred", "m" * 80 + "_a", "20261101", attempt=12)
    long_b = processing_job_name("pred", "m" * 80 + "_b", "20261101", attempt=12)
    assert long_a != long_b
    for name in (long_a, long_b):
        assert len(name) <= 63 and NAME_PATTERN.fullmatch(name) and name.endswith("-a12")
