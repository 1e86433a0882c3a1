"""Dagster entry point: ``dagster dev -w workspace.yaml`` loads ``defs`` from here.

Definitions are built when Dagster loads the code location, not at import, and
need no environment variable: the default is the embedded local mode (a local
directory as bucket, SQLite job store, local Processing runner).
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from batch_assets.checks import build_completeness_check
from batch_assets.predictions import ASSET_NAME as PREDICTIONS
from batch_assets.predictions import build_predictions_asset
from batch_assets.registry import DEFAULT_REGISTRY_PATH, load_registry
from batch_assets.trained_model import ASSET_NAME as TRAINED_MODEL
from batch_assets.trained_model import build_trained_model_asset
from resources.job_store import SQLiteJobStore
from resources.processing import SageMakerProcessing
from resources.storage import LocalBucketStorage


def local_resources(data_dir: str = ".data") -> dict:
    """The embedded default: everything under one local folder."""
    return {
        "storage": LocalBucketStorage(root=f"{data_dir}/bucket"),
        "job_store": SQLiteJobStore(path=f"{data_dir}/jobs.sqlite3"),
        "processing": SageMakerProcessing(local_work_dir=f"{data_dir}/processing"),
    }


def build_definitions(
    registry_path: Path | str = DEFAULT_REGISTRY_PATH, resources: dict | None = None
) -> dg.Definitions:
    registry = load_registry(registry_path)
    trained_model = build_trained_model_asset(registry)
    predictions = build_predictions_asset(registry)
    complete = build_completeness_check(registry)
    return dg.Definitions(
        assets=[trained_model, predictions],
        asset_checks=[complete],
        jobs=[
            dg.define_asset_job("train_models", selection=[TRAINED_MODEL]),
            dg.define_asset_job("score_predictions", selection=[PREDICTIONS]),

        ],
        resources=resources if resources is not None else local_resources(),
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions()
