"""The same assets on the AWS adapters: S3 and DynamoDB on a moto server, and a
SageMaker client fake that hands each request to the local runner."""

from __future__ import annotations

import io
import uuid
from pathlib import Path

import boto3
import dagster as dg
import pandas as pd
import pytest
from dagster_aws.s3 import S3Resource

from batch_assets.definitions import AWS_SETTINGS, build_definitions, resources_for
from batch_assets.dev.demo_data import DemoDataSpec, generate_demo_data
from batch_assets.planning.model_pointer import read_current_model
from batch_assets.planning.scoring_groups import prediction_key
from resources.job_store.dynamodb import DynamoDBJobStore, create_job_table
from resources.local_processing.client import LocalProcessingClient
from resources.processing import SageMakerProcessing
from resources.s3_storage import S3BucketStorage
from tests.conftest import QUIET, materialization, write_test_registry
from tests.support.aws import REGION

TINY = DemoDataSpec(days=("2026-11-01",), files_per_day=4, rows_per_file=1_500,
                    training_rows=5_000)


class SageMakerViaLocalRunner(SageMakerProcessing):
    """The sagemaker backend's settings and request, run by the local runner."""

    runner_dir: str

    def open_client(self, storage):
        return LocalProcessingClient(storage, Path(self.runner_dir), stop_grace_seconds=2.0)


@pytest.fixture
def aws_pipeline(tmp_path, moto_endpoint):
    bucket = f"bucket-{uuid.uuid4().hex[:10]}"
    table = f"jobs-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=moto_endpoint, region_name=REGION).create_bucket(
        Bucket=bucket)
    create_job_table(table, boto3.client("dynamodb", endpoint_url=moto_endpoint,
                                         region_name=REGION))
    resources = {
        "storage": S3BucketStorage(bucket=bucket, s3=S3Resource(endpoint_url=moto_endpoint,
                                                                region_name=REGION)),
        "job_store": DynamoDBJobStore(table_name=table, endpoint_url=moto_endpoint,
                                      region_name=REGION),
        "processing": SageMakerViaLocalRunner(
            region_name=REGION,
            image_uri="123456789012.dkr.ecr.us-east-1.amazonaws.com/batch-inference:1",
            role_arn="arn:aws:iam::123456789012:role/batch-inference",
            job_name_prefix="e2e", runner_dir=str(tmp_path / "jobs"),
            poll_interval_seconds=0.1),
    }
    registry = write_test_registry(tmp_path / "models.toml")
    generate_demo_data(resources["storage"], TINY)
    return build_definitions(registry, resources), resources


def _run(definitions, job, key, models=None):
    return definitions.resolve_job_def(job).execute_in_process(
        partition_key=key, instance=dg.DagsterInstance.ephemeral(), run_config=QUIET,
        asset_selection=[prediction_key(m) for m in models] if models else None)


def test_predictions_partition_on_s3_dynamodb_and_sagemaker_request(aws_pipeline):
    definitions, resources = aws_pipeline
    storage, job_store = resources["storage"], resources["job_store"]
    _run(definitions, "train_models", "churn_xgb")
    day = "2026-11-01"
    result = _run(definitions, "score_predictions", day, ["churn_xgb"])

    meta = materialization(result, "churn_xgb")
    assert meta["backend"] == "sagemaker"
    assert meta["job_name"] == "e2e-pred-customers-20261101-a1"
    assert meta["console_url"].startswith("https://us-east-1.console.aws.amazon.com/")
    assert meta["rows"] == 4 * 1_500 and meta["files_scored_now"] == 4
    assert meta["output_location"] == f"s3://{storage.bucket}/predictions/churn_xgb/dt=2026-11-01/"
    assert all(e.passed for e in result.get_asset_check_evaluations())

    (attempt,) = job_store.attempts("score_customers", day)
    assert attempt.status == "Completed" and attempt.backend == "sagemaker"
    assert job_store.list_in_flight() == []

    prefix = "predictions/churn_xgb/dt=2026-11-01/"
    outputs = pd.concat(pd.read_parquet(io.BytesIO(storage.read_bytes(o.key)))
                        for o in storage.list_objects(prefix) if o.key.endswith(".parquet"))
    inputs = pd.concat(pd.read_parquet(io.BytesIO(storage.read_bytes(o.key)))
                       for o in storage.list_objects("data/customers/dt=2026-11-01/")
                       if o.key.endswith(".parquet"))
    assert sorted(outputs["customer_id"]) == sorted(inputs["customer_id"])
    current = read_current_model(storage, "churn_xgb")
    assert storage.exists(current.prefix + "model.ubj")

    again = _run(definitions, "score_predictions", day, ["churn_xgb"])
    assert materialization(again, "churn_xgb")["nothing_to_do"] is True


def test_tiny_files_on_s3_are_packed_and_a_damaged_pack_is_replaced(aws_pipeline):
    """60 files of 100 rows on S3: one pack per instance; a pack truncated in the
    bucket is found, removed before the rerun, and its files re-scored: every key
    once across the day's outputs."""
    definitions, resources = aws_pipeline
    storage = resources["storage"]
    _run(definitions, "train_models", "churn_xgb")
    day, data = "2026-11-01", "data/customers/dt=2026-11-01/"
    table = pd.concat(pd.read_parquet(io.BytesIO(storage.read_bytes(o.key)))
                      for o in storage.list_objects(data) if o.key.endswith(".parquet"))
    for item in storage.list_objects(data):
        if item.key.endswith(".parquet"):
            storage.delete(item.key)
    for index in range(60):
        buffer = io.BytesIO()
        table.iloc[index * 100:(index + 1) * 100].to_parquet(buffer, index=False)
        storage.write_bytes(f"{data}tiny-{index:03d}.parquet", buffer.getvalue())

    _run(definitions, "score_predictions", day, ["churn_xgb"])
    prefix = "predictions/churn_xgb/dt=2026-11-01/"
    packs = sorted(o.key.removeprefix(prefix) for o in storage.list_objects(prefix)
                   if o.key.endswith(".parquet"))
    assert packs == ["tiny-000.packed-30.parquet", "tiny-030.packed-30.parquet"]
    damaged = storage.read_bytes(prefix + packs[1])
    storage.write_bytes(prefix + packs[1], damaged[: len(damaged) // 2])

    again = _run(definitions, "score_predictions", day, ["churn_xgb"])
    meta = materialization(again, "churn_xgb")
    assert (meta["files_scored_now"], meta["files_already_done"]) == (30, 30)
    outputs = pd.concat(pd.read_parquet(io.BytesIO(storage.read_bytes(o.key)))
                        for o in storage.list_objects(prefix) if o.key.endswith(".parquet"))
    assert sorted(outputs["customer_id"]) == sorted(table["customer_id"])


def test_s3_listing_paginates_past_1000_keys(moto_endpoint):
    bucket = f"many-{uuid.uuid4().hex[:10]}"
    client = boto3.client("s3", endpoint_url=moto_endpoint, region_name=REGION)
    client.create_bucket(Bucket=bucket)
    for i in range(1_205):
        client.put_object(Bucket=bucket, Key=f"data/x/dt=2026-11-01/part-{i:05d}.parquet",
                          Body=b"")
    storage = S3BucketStorage(bucket=bucket, s3=S3Resource(endpoint_url=moto_endpoint,
                                                           region_name=REGION))
    listed = storage.list_objects("data/x/dt=2026-11-01/")
    assert len(listed) == 1_205
    assert [o.key for o in listed] == sorted(o.key for o in listed)


def test_s3_storage_round_trip(moto_endpoint, tmp_path):
    bucket = f"rt-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=moto_endpoint, region_name=REGION).create_bucket(
        Bucket=bucket)
    storage = S3BucketStorage(bucket=bucket, s3=S3Resource(endpoint_url=moto_endpoint,
                                                           region_name=REGION))
    assert not storage.exists("a/b.json")
    with pytest.raises(FileNotFoundError, match=f"s3://{bucket}/a/b.json"):
        storage.read_bytes("a/b.json")
    storage.write_json("a/b.json", {"x": 1})
    assert storage.read_json("a/b.json") == {"x": 1}
    source = tmp_path / "big.bin"
    source.write_bytes(b"z" * (9 * 1024 * 1024))  # above boto3's multipart threshold
    storage.upload_file(source, "a/big.bin")
    storage.download_file("a/big.bin", tmp_path / "copy.bin")
    assert (tmp_path / "copy.bin").read_bytes() == source.read_bytes()
    storage.delete("a/b.json")
    assert not storage.exists("a/b.json")


def test_aws_mode_names_missing_settings():
    with pytest.raises(dg.DagsterInvalidDefinitionError) as error:
        resources_for({"BATCH_INFERENCE_MODE": "aws", "BATCH_BUCKET": "b"})
    for name in ("BATCH_JOB_TABLE", "BATCH_ROLE_ARN", "AWS_REGION"):
        assert name in str(error.value)
    assert "BATCH_BUCKET" not in str(error.value)
    with pytest.raises(dg.DagsterInvalidDefinitionError, match="'cloud' is not a mode"):
        resources_for({"BATCH_INFERENCE_MODE": "cloud"})


def test_aws_mode_builds_aws_resources_from_env_vars():
    environment = {name: "x" for name, (required, _) in AWS_SETTINGS.items() if required}
    resources = resources_for({"BATCH_INFERENCE_MODE": "aws", **environment})
    assert isinstance(resources["storage"], S3BucketStorage)
    assert isinstance(resources["job_store"], DynamoDBJobStore)
    assert resources["processing"].backend_name == "sagemaker"
    listed = resources_for({
        "BATCH_INFERENCE_MODE": "aws", **environment, "BATCH_SUBNETS": "subnet-a, subnet-b",
        "BATCH_SECURITY_GROUP_IDS": "sg-1", "BATCH_NETWORK_ISOLATION": "true",
    })["processing"]
    network = listed.job_settings().network.request()
    assert network["VpcConfig"] == {"Subnets": ["subnet-a", "subnet-b"],
                                    "SecurityGroupIds": ["sg-1"]}
    assert network["EnableNetworkIsolation"] is True
