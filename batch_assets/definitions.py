"""Dagster entry point: ``dagster dev -w workspace.yaml`` loads ``defs`` from here.

Definitions are built when Dagster loads the code location, not at import, and
need no environment variable: the default is the embedded local mode (a local
directory as bucket, SQLite job store, local Processing runner). With
``BATCH_INFERENCE_MODE=aws`` the same assets run on S3, DynamoDB and SageMaker,
configured by the environment variables in ``AWS_SETTINGS`` (read by Dagster
through ``dg.EnvVar`` when a run starts).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import dagster as dg
from dagster_aws.s3 import S3Resource

from batch_assets.assets.data_assets import data_asset_specs
from batch_assets.assets.partitions import prediction_partitions
from batch_assets.assets.predictions import build_prediction_assets
from batch_assets.assets.trained_model import build_trained_model_asset
from batch_assets.automation.jobs import score_predictions_job, train_models_job
from batch_assets.automation.reaper import build_reaper_sensor
from batch_assets.automation.sensors import build_new_data_sensor, build_retry_sensor
from batch_assets.jobs.orchestration import TRANSIENT_RETRY
from batch_assets.registry import DEFAULT_REGISTRY_PATH, load_registry
from resources.job_cost import parse_instance_prices
from resources.job_store import SQLiteJobStore
from resources.job_store.admission import parse_instance_quotas
from resources.job_store.dynamodb import DynamoDBJobStore
from resources.processing import LocalProcessing, SageMakerProcessing
from resources.s3_storage import S3BucketStorage
from resources.storage import LocalBucketStorage

MODE_VARIABLE = "BATCH_INFERENCE_MODE"
REGISTRY_VARIABLE = "BATCH_MODEL_REGISTRY"
# environment variable -> (required, what it sets)
AWS_SETTINGS: dict[str, tuple[bool, str]] = {
    "BATCH_BUCKET": (True, "S3 bucket for data, models, predictions and job inputs"),
    "BATCH_JOB_TABLE": (True, "DynamoDB table of the job store (see README to create it)"),
    "BATCH_ROLE_ARN": (True, "SageMaker execution role of the processing jobs"),
    "AWS_REGION": (True, "region of the bucket, the table and the jobs"),
    "BATCH_IMAGE_URI": (False, "container image (default: prebuilt SageMaker image + code)"),
    "BATCH_JOB_NAME_PREFIX": (False, "prefix of job names, one per deployment"),
    "BATCH_KMS_KEY_ID": (False, "KMS key for instance volumes and job outputs"),
    "BATCH_SUBNETS": (False, "comma-separated VPC subnets of the job instances"),
    "BATCH_SECURITY_GROUP_IDS": (False, "comma-separated VPC security groups"),
    "BATCH_NETWORK_ISOLATION": (False, "'true': no outbound network from the container"),
    "BATCH_S3_ENDPOINT_URL": (False, "S3-compatible endpoint instead of AWS S3"),
    "BATCH_DYNAMODB_ENDPOINT_URL": (False, "DynamoDB endpoint (DynamoDB Local, tests)"),
    "BATCH_SAGEMAKER_ENDPOINT_URL": (False, "SageMaker API endpoint (VPC endpoint, tests)"),
    "BATCH_LOGS_ENDPOINT_URL": (
        False, "CloudWatch Logs endpoint the containers' log lines are read from for the "
        "run log (VPC endpoint, tests)"),
    "BATCH_INSTANCE_PRICES": (
        False, "USD per instance-hour per type, 'ml.m5.xlarge=0.23,ml.m5.large=0.115' (from "
        "aws.amazon.com/sagemaker/pricing, Processing): cost estimates in the metadata"),
    "BATCH_INSTANCE_QUOTAS": (
        False, "processing instance quota per type, 'ml.m5.xlarge=20,ml.m5.large=10': a job "
        "starts only when its instances fit (types not listed, or unset: no admission)"),
    "BATCH_RUN_WORKERS_ON_THIS_HOST": (
        False, "'true' when Dagster's run workers run on the daemon's machine (one VM): "
        "the reaper then also fails runs that died waiting for a pool slot"),
}


def local_resources(data_dir: str = ".data", instance_quotas: dict[str, int] | None = None,
                    instance_prices: dict[str, float] | None = None) -> dict:
    """The embedded default: everything under one local folder (optionally with instance
    admission and cost estimates, as on AWS)."""
    return {
        "storage": LocalBucketStorage(root=f"{data_dir}/bucket"),
        "job_store": SQLiteJobStore(path=f"{data_dir}/jobs.sqlite3"),
        "processing": LocalProcessing(work_dir=f"{data_dir}/processing",
                                      instance_quotas=instance_quotas or {},
                                      instance_prices=instance_prices or {}),
    }


def instance_tables(environment: Mapping[str, str]) -> tuple[dict[str, int], dict[str, float]]:
    """``BATCH_INSTANCE_QUOTAS`` and ``BATCH_INSTANCE_PRICES`` (both modes), parsed at
    load time (a dict cannot come through ``dg.EnvVar``); a malformed value fails
    loading with the variable's name and the format."""
    try:
        return (parse_instance_quotas(environment.get("BATCH_INSTANCE_QUOTAS", ""),
                                      "BATCH_INSTANCE_QUOTAS"),
                parse_instance_prices(environment.get("BATCH_INSTANCE_PRICES", ""),
                                      "BATCH_INSTANCE_PRICES"))
    except ValueError as exc:
        raise dg.DagsterInvalidDefinitionError(str(exc)) from exc


def aws_resources(environment: Mapping[str, str]) -> dict:
    """Resources on S3, DynamoDB and SageMaker; values come from ``dg.EnvVar`` at run
    time. Required variables are checked here so a missing one fails loading with
    its name, not a run hours later."""
    missing = [name for name, (required, _) in AWS_SETTINGS.items()
               if required and not environment.get(name)]
    if missing:
        raise dg.DagsterInvalidDefinitionError(
            f"{MODE_VARIABLE}=aws needs these environment variables: "
            + "; ".join(f"{name} ({AWS_SETTINGS[name][1]})" for name in missing)
        )

    def optional(name: str) -> dg.EnvVar | None:
        return dg.EnvVar(name) if environment.get(name) else None

    region = dg.EnvVar("AWS_REGION")
    def listed(name: str) -> list[str] | None:
        # lists cannot come through dg.EnvVar: split here, at load time
        value = environment.get(name, "")
        return [item.strip() for item in value.split(",") if item.strip()] or None

    quotas, prices = instance_tables(environment)

    processing_settings = {
        "instance_quotas": quotas or None,
        "instance_prices": prices or None,
        "image_uri": optional("BATCH_IMAGE_URI"),
        "job_name_prefix": optional("BATCH_JOB_NAME_PREFIX"),
        "endpoint_url": optional("BATCH_SAGEMAKER_ENDPOINT_URL"),
        "logs_endpoint_url": optional("BATCH_LOGS_ENDPOINT_URL"),
        "volume_kms_key_id": optional("BATCH_KMS_KEY_ID"),
        "output_kms_key_id": optional("BATCH_KMS_KEY_ID"),
        "subnets": listed("BATCH_SUBNETS"),
        "security_group_ids": listed("BATCH_SECURITY_GROUP_IDS"),
        "enable_network_isolation": (
            environment.get("BATCH_NETWORK_ISOLATION", "").lower() == "true" or None),
        "enable_inter_container_traffic_encryption": True,
    }
    return {
        "storage": S3BucketStorage(
            bucket=dg.EnvVar("BATCH_BUCKET"),
            s3=S3Resource(region_name=region, endpoint_url=optional("BATCH_S3_ENDPOINT_URL")),
        ),
        "job_store": DynamoDBJobStore(
            table_name=dg.EnvVar("BATCH_JOB_TABLE"), region_name=region,
            endpoint_url=optional("BATCH_DYNAMODB_ENDPOINT_URL"),
            run_workers_on_this_host=(
                environment.get("BATCH_RUN_WORKERS_ON_THIS_HOST", "").lower() == "true"),
        ),
        "processing": SageMakerProcessing(
            region_name=region, role_arn=dg.EnvVar("BATCH_ROLE_ARN"),
            **{k: v for k, v in processing_settings.items() if v is not None},
        ),
    }


def resources_for(environment: Mapping[str, str]) -> dict:
    mode = environment.get(MODE_VARIABLE, "local")
    if mode == "local":
        quotas, prices = instance_tables(environment)
        return local_resources(instance_quotas=quotas, instance_prices=prices)
    if mode == "aws":
        return aws_resources(environment)
    raise dg.DagsterInvalidDefinitionError(
        f"{MODE_VARIABLE}={mode!r} is not a mode: use 'local' (default) or 'aws'"
    )


def build_definitions(
    registry_path: Path | str = DEFAULT_REGISTRY_PATH, resources: dict | None = None,
    retry_policy: dg.RetryPolicy = TRANSIENT_RETRY,
) -> dg.Definitions:
    registry = load_registry(registry_path)
    trained_model = build_trained_model_asset(registry, retry_policy)
    prediction_assets = build_prediction_assets(registry, retry_policy)
    # the sensors launch runs of these jobs (not of __ASSET_JOB): batch_assets.automation.jobs
    score_job, train_job = score_predictions_job(registry), train_models_job()
    sensors = [build_new_data_sensor(registry, dataset, models, score_job)
               for dataset, models in registry.datasets.items()]
    sensors.append(build_retry_sensor(registry, score_job))
    sensors.append(build_reaper_sensor(registry, score_job, train_job))
    return dg.Definitions(
        assets=[trained_model, *prediction_assets,
                *data_asset_specs(registry, prediction_partitions(registry))],
        sensors=sensors,
        # Steps only submit and watch processing jobs (the compute runs there), so
        # they run in the run's own process: no step subprocess to start per step.
        executor=dg.in_process_executor,
        jobs=[train_job, score_job],
        resources=resources if resources is not None else local_resources(),
    )


@dg.definitions
def defs() -> dg.Definitions:
    """Read when Dagster loads the code location (never at import)."""
    environment = os.environ
    registry = environment.get(REGISTRY_VARIABLE) or DEFAULT_REGISTRY_PATH
    return build_definitions(registry, resources_for(environment))
