"""The pipeline's named jobs, shared by ``Definitions`` and the sensors that target them.

A sensor declared with ``asset_selection`` launches runs of Dagster's implicit
``__ASSET_JOB``, which the UI shows as "Job: None" and which no job page lists.
A sensor declared with ``job=`` (or ``jobs=``) whose run requests still select
assets (``RunRequest.asset_selection``, a subset of the job's) launches runs of
that job: they appear on ``score_predictions``' page with its name. Sensors and
``Definitions`` must hold the same job object, so both get it from here.
"""

from __future__ import annotations

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition as AssetJob,  # not exported by dagster 1.13
)

from batch_assets.assets.trained_model import ASSET_NAME as TRAINED_MODEL
from batch_assets.planning.scoring_groups import prediction_key
from batch_assets.registry import Registry

SCORE_JOB = "score_predictions"
TRAIN_JOB = "train_models"


def score_predictions_job(registry: Registry) -> AssetJob:
    """Every model's predictions (with their checks); a partition is a day, and each
    scoring group runs one step (one processing job) for it."""
    return dg.define_asset_job(SCORE_JOB, selection=dg.AssetSelection.assets(
        *[prediction_key(model) for model in registry.model_names]))


def train_models_job() -> AssetJob:
    return dg.define_asset_job(TRAIN_JOB, selection=[TRAINED_MODEL])
