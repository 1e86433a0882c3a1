"""Model lineage: a retrained model makes its prediction partitions stale, and the
rerun rescores every file with the new version (recorded in every manifest), and
only that model's files, although the run selects its sibling too."""

from __future__ import annotations

import json

import dagster as dg
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._core.loader import LoadingContextForTest

from batch_assets.planning.model_pointer import read_current_model
from batch_assets.planning.scoring_groups import prediction_key
from tests.conftest import SMALL_DATA, materialization

DAY = SMALL_DATA.days[0]


def _status(pipeline, instance, model: str = "churn_xgb") -> StaleStatus:
    resolver = CachingStaleStatusResolver(instance, pipeline.definitions().resolve_asset_graph(),
                                          LoadingContextForTest(instance))
    return resolver.get_status(prediction_key(model), DAY)


def test_retrained_model_makes_predictions_stale_and_rerun_uses_it(pipeline):
    with dg.instance_for_test() as instance:
        pipeline.run_job("train_models", "churn_xgb", instance=instance)
        first_version = read_current_model(pipeline.storage, "churn_xgb").version
        pipeline.run_job("train_models", "churn_logreg", instance=instance)
        pipeline.score(DAY, "churn_xgb", "churn_logreg", instance=instance)
        assert _status(pipeline, instance) == StaleStatus.FRESH
        assert _status(pipeline, instance, "churn_logreg") == StaleStatus.FRESH

        pipeline.run_job("train_models", "churn_xgb", instance=instance)
        second_version = read_current_model(pipeline.storage, "churn_xgb").version
        assert second_version != first_version
        assert _status(pipeline, instance) == StaleStatus.STALE
        # Dagster marks the sibling stale too (one partition mapping per upstream asset
        # in a multi-asset: each model's predictions depend on the group's trained_model
        # partitions; README "Dagster's limits"); the pipeline re-scores churn_xgb alone

        result = pipeline.score(DAY, "churn_xgb", "churn_logreg", instance=instance)
        meta = materialization(result, "churn_xgb")
        assert meta["model_version"] == second_version
        assert meta["files_scored_now"] == SMALL_DATA.files_per_day
        # the sibling's files are current: the same job re-scored churn_xgb alone
        assert materialization(result, "churn_logreg")["files_scored_now"] == 0
        assert meta["models_in_job"] == 1
        assert _status(pipeline, instance) == StaleStatus.FRESH
        assert _status(pipeline, instance, "churn_logreg") == StaleStatus.FRESH
    manifests = (pipeline.storage.root_path /
                 f"predictions/churn_xgb/dt={DAY}/_manifests").glob("*.json")
    versions = {json.loads(p.read_text())["model_version"] for p in manifests}
    assert versions == {second_version}
