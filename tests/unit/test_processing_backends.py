"""The processing backends behind one interface: each with only its own settings."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from batch_assets.definitions import local_resources
from resources.job_store import SQLiteJobStore
from resources.processing import LocalProcessing, ProcessingBackend, SageMakerProcessing
from resources.storage import LocalBucketStorage

AWS_ONLY = {"region_name", "endpoint_url", "logs_endpoint_url", "max_attempts", "image_uri",
            "role_arn", "volume_size_gb", "volume_kms_key_id", "output_kms_key_id", "subnets",
            "security_group_ids", "enable_network_isolation",
            "enable_inter_container_traffic_encryption"}
LOCAL_ONLY = {"work_dir", "keep_instance_dirs", "stop_grace_seconds", "instance_quota"}


def test_a_local_user_sees_no_aws_setting_and_an_aws_user_no_local_one():
    local, aws = set(LocalProcessing.model_fields), set(SageMakerProcessing.model_fields)
    assert aws >= AWS_ONLY and not local & AWS_ONLY
    assert local >= LOCAL_ONLY and not aws & LOCAL_ONLY
    shared = set(ProcessingBackend.model_fields)
    assert local & aws == shared
    assert {"instance_quotas", "instance_prices", "poll_interval_seconds"} <= shared


def test_every_setting_is_described_for_the_ui():
    for backend in (LocalProcessing, SageMakerProcessing):
        undescribed = [name for name, field in backend.model_fields.items()
                       if not field.description]
        assert undescribed == [], f"{backend.__name__}: {undescribed}"


def test_the_interface_cannot_stand_in_for_a_backend():
    with pytest.raises(TypeError, match="abstract"):
        ProcessingBackend()


def test_a_local_setting_given_to_the_sagemaker_backend_is_refused():
    with pytest.raises(ValidationError, match=r"SageMakerProcessing\nwork_dir\n  Extra inputs"):
        SageMakerProcessing(work_dir="/tmp/jobs")
    with pytest.raises(ValidationError, match=r"LocalProcessing\nlocal_work_dir\n  Extra"):
        LocalProcessing(local_work_dir="/tmp/jobs")  # the name before the split
    with pytest.raises(ValidationError, match="busy_timeout"):
        SQLiteJobStore(busy_timeout=5)  # the field is busy_timeout_seconds
    with pytest.raises(ValidationError, match="rot"):
        LocalBucketStorage(rot="/tmp/bucket")


def test_each_backend_builds_its_own_job_settings(tmp_path):
    local = local_resources(str(tmp_path))["processing"]
    assert local.backend_name == "local"
    assert local.job_settings().network.request() is None
    assert local.job_links("pred-a1") == {"job_dir": str(tmp_path.resolve()
                                                         / "processing" / "pred-a1")}
    aws = SageMakerProcessing(region_name="eu-west-1", subnets=["subnet-1"],
                              security_group_ids=["sg-1"], volume_size_gb=50,
                              role_arn="arn:aws:iam::123456789012:role/r")
    settings = aws.job_settings()
    assert settings.network.request() == {"VpcConfig": {"Subnets": ["subnet-1"],
                                                        "SecurityGroupIds": ["sg-1"]}}
    assert (settings.volume_size_gb, settings.role_arn) == (50, aws.role_arn)
    assert aws.job_links("pred-a1")["console_url"].startswith(
        "https://eu-west-1.console.aws.amazon.com/")
