"""Model lineage: a retrained model makes its prediction partitions stale, and the
rerun rescores every file with the new version (recorded in every manifest)."""

from __future__ import annotations

import json

import dagster as dg
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._core.loader import LoadingContextForTest

from batch_assets.model_pointer import read_current_model
from tests.conftest import SMALL_DATA

DAY = SMALL_DATA.days[0]
KEY = f"{DAY}|churn_xgb"


def _status(pipeline, instance) -> StaleStatus:
    resolver = CachingStaleStatusResolver(instance, pipeline.definitions().resolve_asset_graph(),
                                          LoadingContextForTest(instance))
    return resolver.get_status(dg.AssetKey("predictions"), KEY)


def test_retrained_model_makes_predictions_stale_and_rerun_uses_it(pipeline):
    with dg.instance_for_test() as instance:
        pipeline.run_job("train_models", "churn_xgb", instance=instance)
        first_version = read_current_model(pipeline.storage, "churn_xgb").version
        pipeline.run_job("score_predictions", KEY, instance=instance)
        assert _status(pipeline, instance) == StaleStatus.FRESH

        pipeline.run_job("train_models", "churn_xgb", instance=instance)
        second_version = read_current_model(pipeline.storage, "churn_xgb").version
        assert second_version != first_version
        assert _status(pipeline, instance) == StaleStatus.STALE

        result = pipeline.run_job("score_predictions", KEY, instance=instance)
        (event,) = result.asset_materializations_for_node("predictions")
        assert event.metadata["model_version"].value == second_version
        assert event.metadata["files_scored_now"].value == SMALL_DATA.files_per_day
        assert _status(pipeline, instance) == StaleStatus.FRESH
    manifests = (pipeline.storage.root_path /
                 f"predictions/churn_xgb/dt={DAY}/_manifests").glob("*.json")
    versions = {json.loads(p.read_text())["model_version"] for p in manifests}
    assert versions == {second_version}
