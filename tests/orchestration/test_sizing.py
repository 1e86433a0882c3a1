"""instance_count = "auto": jobs sized from the day's input and measured throughput."""

from __future__ import annotations

import pytest

from batch_assets.instance_types import vcpus
from batch_assets.registry import RegistryError, load_registry
from resources.processing import LocalProcessing
from tests.conftest import SMALL_DATA, make_pipeline, materialization
from tests.support.registries import edit_registry, model

DAY1, DAY2 = SMALL_DATA.days


def _auto_registry(path, base, target_minutes, cap=3):
    return edit_registry(path, lambda data: model(data, "churn_xgb").update(
        instance_count="auto", target_minutes=target_minutes, max_instance_count=cap),
        source=base)


def test_instance_types_name_their_cores():
    assert [vcpus(t) for t in ("ml.m5.large", "ml.m5.xlarge", "ml.c5.2xlarge",
                               "ml.m5.24xlarge", "ml.t3.medium", "ml.m6i.metal")] == [
        2, 4, 8, 96, 1, None]


@pytest.mark.parametrize(("settings", "message"), [
    ({"instance_count": "auto"}, "needs target_minutes"),
    ({"instance_count": "auto", "target_minutes": 0}, "needs target_minutes"),
    ({"instance_count": 2, "target_minutes": 5}, "go with instance_count"),
    ({"instance_count": "auto", "target_minutes": 5, "max_instance_count": 0},
     "max_instance_count must be"),
    ({"instance_count": "many"}, 'or "auto"'),
])
def test_auto_sizing_settings_are_validated(tmp_path, pipeline, settings, message):
    path = edit_registry(tmp_path / "bad.toml",
                         lambda data: model(data, "churn_xgb").update(settings),
                         source=pipeline.registry_path)
    with pytest.raises(RegistryError, match=message):
        load_registry(path)


def test_auto_sizing_uses_the_cap_first_then_measured_throughput(tmp_path, pipeline):
    registry = _auto_registry(tmp_path / "auto.toml", pipeline.registry_path, 10_000)
    auto = make_pipeline(pipeline.root, registry, pipeline.storage.root_path)
    spec = load_registry(registry).get("churn_xgb")
    assert spec.auto_instances and spec.instance_count == 3 and spec.target_minutes == 10_000

    first = materialization(auto.score(DAY1, "churn_xgb"), "churn_xgb")
    assert first["instances"] == 3
    assert "no measured throughput yet for churn_xgb" in first["sizing"]["reason"]
    (attempt,) = auto.attempts(DAY1, "churn_xgb")
    described = auto.processing.jobs(auto.storage).describe(attempt.job_name)
    assert described["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == 3

    # a day later: 10,000 minutes is far more than 10,000 rows need, so one instance
    second = materialization(auto.score(DAY2, "churn_xgb"), "churn_xgb")
    assert second["instances"] == 1
    sizing = second["sizing"]
    assert sizing["churn_xgb"]["measured_on"] == DAY1
    assert sizing["churn_xgb"]["rows_estimate"] == pytest.approx(
        SMALL_DATA.files_per_day * SMALL_DATA.rows_per_file, rel=0.1)
    assert sizing["churn_xgb"]["rows_per_core_second"] > 0


def test_auto_sizing_is_capped_by_the_quota_and_the_files(tmp_path, pipeline):
    registry = _auto_registry(tmp_path / "auto.toml", pipeline.registry_path, 1e-6, cap=50)
    auto = make_pipeline(pipeline.root, registry, pipeline.storage.root_path)
    materialization(auto.score(DAY1, "churn_xgb"), "churn_xgb")  # measures throughput
    auto.processing = LocalProcessing(**{**auto.processing.model_dump(),
                                             "instance_quotas": {"ml.m5.xlarge": 4}})
    (pipeline.storage.root_path / f"predictions/churn_xgb/dt={DAY2}").mkdir(parents=True,
                                                                          exist_ok=True)
    second = materialization(auto.score(DAY2, "churn_xgb"), "churn_xgb")
    assert second["instances"] == 4
    assert "capped at 4 by instance quota" in second["sizing"]["reason"]
    assert second["sizing"]["caps"] == {"max_instance_count": 50,
                                        "input files": SMALL_DATA.files_per_day,
                                        "instance quota": 4}
