"""The SageMaker backend: real boto3 against moto, botocore retries, quota, stop."""

from __future__ import annotations

import logging

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError

from resources.processing import ProcessingJobs, SageMakerProcessing
from resources.processing_request import (
    ClusterSpec,
    InputChannel,
    OutputChannel,
    ProcessingJobSpec,
    build_processing_job_request,
)
from tests.support.aws import REGION
from tests.support.fake_sagemaker import ScriptedSageMaker
from tests.support.helpers import interrupted_after

LOG = logging.getLogger("test")


def a_request(name: str = "pred-m-20261101-a1") -> dict:
    return build_processing_job_request(ProcessingJobSpec(
        job_name=name,
        image_uri="123456789012.dkr.ecr.us-east-1.amazonaws.com/batch-inference:1",
        entrypoint=["python3", "-m", "container"],
        arguments=["infer"],
        inputs=[InputChannel("data", "s3://b/jobs/j/inputs.manifest",
                             "/opt/ml/processing/input/data", distribution="ShardedByS3Key",
                             data_type="ManifestFile")],
        outputs=[OutputChannel("predictions", "s3://b/predictions/m/dt=2026-11-01/",
                               "/opt/ml/processing/output/predictions")],
        cluster=ClusterSpec("ml.m5.xlarge", 4),
        role_arn="arn:aws:iam::123456789012:role/batch-inference",
        tags={"dagster-asset": "predictions"},
    ))


def sagemaker(moto_endpoint: str, **settings) -> SageMakerProcessing:
    return SageMakerProcessing(region_name=REGION, endpoint_url=moto_endpoint,
                               poll_interval_seconds=0.01, **settings)


def test_real_boto3_request_is_accepted_by_the_api_model(moto_endpoint):
    processing = sagemaker(moto_endpoint)
    jobs = processing.jobs(storage=None)
    assert jobs.submit(a_request("moto-job-a1")) is True
    described = jobs.wait("moto-job-a1", LOG)
    assert described["ProcessingJobStatus"] == "Completed"
    assert jobs.describe("never-submitted-a1") is None  # unknown to the backend
    links = processing.job_links("moto-job-a1")
    assert links["console_url"].startswith("https://us-east-1.console.aws.amazon.com/sagemaker/")
    assert "moto-job-a1" in links["logs_url"]


def test_throttling_is_retried_by_botocore_standard_mode(moto_endpoint):
    jobs = sagemaker(moto_endpoint, max_attempts=5).jobs(storage=None)
    client = jobs.client
    jobs.submit(a_request("throttled-a1"))
    calls = []

    def throttle_twice(request, **_):
        calls.append(request.url)
        if len(calls) <= 2:
            return AWSResponse(request.url, 400, {"Content-Type": "application/x-amz-json-1.1"},
                               _RawBody(b'{"__type": "ThrottlingException", '
                                        b'"message": "Rate exceeded"}'))
        return None

    client.meta.events.register("before-send.sagemaker.DescribeProcessingJob", throttle_twice)
    assert jobs.wait("throttled-a1", LOG)["ProcessingJobStatus"] == "Completed"
    assert len(calls) == 3

    no_retries = sagemaker(moto_endpoint, max_attempts=1).open_client(storage=None)
    calls.clear()
    no_retries.meta.events.register("before-send.sagemaker.DescribeProcessingJob",
                                    throttle_twice)
    with pytest.raises(ClientError, match="ThrottlingException"):
        no_retries.describe_processing_job(ProcessingJobName="throttled-a1")


class _RawBody:
    """The minimal raw stream botocore reads a short-circuited response from."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_):
        yield self.data


def test_status_sequence_is_reported_in_order():
    fake = ScriptedSageMaker(["InProgress", "InProgress", "InProgress", "Completed"])
    seen = []
    jobs = ProcessingJobs(SageMakerProcessing(poll_interval_seconds=0.001), fake)
    described = jobs.wait("j-a1", LOG, lambda s, _d: seen.append(s))
    assert described["ProcessingJobStatus"] == "Completed"
    assert seen == ["InProgress", "Completed"]
    assert fake.describe_calls == 4


def test_failed_job_returns_its_reason():
    fake = ScriptedSageMaker(["InProgress", "Failed"],
                             failure_reason="AlgorithmError: input file part-3 is corrupt")
    described = ProcessingJobs(SageMakerProcessing(poll_interval_seconds=0.001), fake).wait(
        "j-a1", LOG)
    assert described["ProcessingJobStatus"] == "Failed"
    assert described["FailureReason"] == "AlgorithmError: input file part-3 is corrupt"


def test_instance_quota_is_waited_out_then_resubmitted():
    fake = ScriptedSageMaker(["Completed"], quota_errors=2)
    jobs = ProcessingJobs(SageMakerProcessing(quota_backoff_seconds=0.01), fake)
    assert jobs.submit(a_request()) is True
    assert len(fake.created) == 1 and fake.quota_errors == 0


def test_instance_quota_wait_is_bounded():
    fake = ScriptedSageMaker(["Completed"], quota_errors=100)
    jobs = ProcessingJobs(SageMakerProcessing(quota_backoff_seconds=0.05,
                                              quota_wait_seconds=0.2), fake)
    with pytest.raises(ClientError, match="ResourceLimitExceeded"):
        jobs.submit(a_request())
    assert fake.created == []


def test_interrupted_wait_stops_the_job():
    fake = ScriptedSageMaker(["InProgress"])
    seen = []
    with interrupted_after(0.3):
        ProcessingJobs(SageMakerProcessing(poll_interval_seconds=0.01), fake).wait(
            "long-a1", LOG, lambda s, _d: seen.append(s))
    assert fake.stopped == ["long-a1"]
    assert seen == ["InProgress", "Stopping"]


def test_wait_timeout_stops_the_job():
    from resources.processing import ProcessingJobError

    fake = ScriptedSageMaker(["InProgress"])
    processing = SageMakerProcessing(poll_interval_seconds=0.01, wait_timeout_seconds=0.1)
    with pytest.raises(ProcessingJobError, match="did not finish within"):
        ProcessingJobs(processing, fake).wait("slow-a1", LOG)
    assert fake.stopped == ["slow-a1"]


def test_sagemaker_is_not_imported_when_loading_definitions():
    import subprocess
    import sys

    code = ("import sys; from batch_assets.definitions import defs; defs(); "
            "assert 'sagemaker' not in sys.modules, 'sagemaker imported at load'")
    subprocess.run([sys.executable, "-W", "ignore", "-c", code], check=True, timeout=120)


def test_framework_image_is_resolved_offline_with_code_input(moto_endpoint):
    from dagster_aws.s3 import S3Resource

    from resources.s3_storage import S3BucketStorage

    boto3.client("s3", endpoint_url=moto_endpoint).create_bucket(Bucket="code-bucket")
    storage = S3BucketStorage(bucket="code-bucket",
                              s3=S3Resource(endpoint_url=moto_endpoint, region_name=REGION))
    processing = sagemaker(moto_endpoint)
    launch = processing.container_launch("xgboost", storage)
    assert launch.image_uri.endswith(".amazonaws.com/sagemaker-xgboost:1.7-1")
    (code,) = launch.extra_inputs
    prefix = storage.key_of(code.s3_uri)
    uploaded = {o.key[len(prefix):] for o in storage.list_objects(prefix)}
    assert {"container/__main__.py", "container/infer.py", "container/__init__.py"} <= uploaded
    assert launch.environment == {"PYTHONPATH": code.local_path}
    again = processing.container_launch("sklearn", storage)
    assert again.extra_inputs[0].s3_uri == code.s3_uri  # same code: same prefix, no re-upload
    assert "sagemaker-scikit-learn" in again.image_uri
