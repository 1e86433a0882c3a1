"""Regression and multiclass models through Dagster on the embedded default: outputs,
checks, drift and the quality gate per task."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from batch_assets.dev.demo_data import make_rows, write_table
from batch_assets.planning.layout import data_prefix
from batch_assets.planning.model_pointer import read_current_model
from container.contract import ModelMetadata
from tests.conftest import SMALL_DATA, check_evaluations, materialization, run_checks_only
from tests.support.helpers import framework_predictions, read_outputs, worst_difference
from tests.support.registries import edit_registry, read_registry
from tests.support.registries import model as registry_model

DAY1, DAY2 = SMALL_DATA.days
REGRESSION, MULTICLASS = "customer_value_xgb", "tier_xgb"


def _materialization(result, node):
    if node != "trained_model":
        return materialization(result, node)
    (event,) = result.asset_materializations_for_node(node)
    return {k: v.value for k, v in event.metadata.items()}


_checks = check_evaluations


def _metadata(pipeline, model: str) -> ModelMetadata:
    current = read_current_model(pipeline.storage, model)
    return ModelMetadata.from_dict(pipeline.storage.read_json(current.prefix + "model.json"))


@pytest.mark.parametrize("model", [REGRESSION, MULTICLASS])
def test_partition_end_to_end_per_task(pipeline, model):
    result = pipeline.score(DAY1, model)
    meta = _materialization(result, model)
    assert meta["files_scored_now"] == SMALL_DATA.files_per_day
    checks = _checks(result)
    assert checks["predictions_complete"].passed and checks["predictions_valid"].passed
    valid = checks["predictions_valid"].metadata
    metadata = _metadata(pipeline, model)
    assert valid["task"].value == metadata.task

    bucket = pipeline.storage.root_path
    inputs = pd.concat(pd.read_parquet(p) for p in
                       sorted((bucket / f"data/customers/dt={DAY1}").glob("*.parquet")))
    table = read_outputs(bucket / f"predictions/{model}/dt={DAY1}")
    assert table.schema.names == metadata.output_column_names()
    for name, type_name in metadata.prediction_columns():
        assert str(table.schema.field(name).type) == type_name
    outputs = table.to_pandas()
    assert outputs["customer_id"].is_unique and len(outputs) == len(inputs)
    joined = inputs.merge(outputs, on="customer_id", suffixes=("", "_out"))
    assert len(joined) == len(inputs)
    for column in metadata.passthrough_columns:  # copied from the input row
        assert joined[column].equals(joined[f"{column}_out"]), column
    expected = framework_predictions(bucket / read_current_model(
        pipeline.storage, model).prefix, joined)
    if model == REGRESSION:
        assert table.schema.names == ["customer_id", "segment", "prediction"]
        assert worst_difference(joined["prediction"].to_numpy(), expected) < 1e-6
        # regression values have no [0, 1] rule: negative predictions are valid
        assert valid["min_prediction"].value < 0 and valid["outside_0_1"].value == 0
    else:
        assert table.schema.names == ["customer_id", "segment", "f06", "predicted_label",
                                      "probability_basic", "probability_plus",
                                      "probability_premium"]
        probabilities = joined[["probability_basic", "probability_plus",
                                "probability_premium"]].to_numpy()
        assert worst_difference(probabilities, expected) < 1e-6
        assert set(joined["predicted_label"]) <= {"basic", "plus", "premium"}


def _deliver_shifted_day(pipeline, day: str) -> None:
    """A day whose customers all moved: the features both models use, +2.5."""
    prefix = data_prefix("customers", day)
    for index in range(3):
        table = make_rows(2_000, 9 * 10**9 + index * 2_000, seed=99, with_label=False)
        for name in ("f00", "f01", "f02", "f03", "f04", "f05", "f06", "f07"):
            position = table.schema.get_field_index(name)
            table = table.set_column(position, name, pc.add(table.column(name), 2.5))
        write_table(pipeline.storage, table, f"{prefix}part-{index:05d}.parquet")
    pipeline.storage.write_bytes(prefix + "_SUCCESS", b"")


def test_drift_per_task_passes_on_a_similar_day_and_warns_on_a_shifted_one(pipeline):
    """Regression: PSI over the model's quantile bins; multiclass: over the predicted
    labels, naming the class that moved most."""
    shifted_day = "2026-11-03"
    _deliver_shifted_day(pipeline, shifted_day)
    for model in (REGRESSION, MULTICLASS):
        for day in (DAY1, DAY2):
            pipeline.score(day, model)
        drift = _checks(run_checks_only(pipeline, DAY2, model))["predictions_drift"]
        assert drift.passed and drift.metadata["psi"].value < 0.05, model
        shifted = pipeline.score(shifted_day, model)
        assert shifted.success, "a drift warning must not fail the run"
        drift = _checks(shifted)["predictions_drift"]
        assert not drift.passed and drift.severity.name == "WARN", model
        assert drift.metadata["psi"].value > 0.2
        assert drift.metadata["task"].value == _metadata(pipeline, model).task
        if model == REGRESSION:
            assert len(drift.metadata["bin_edges"].value) == 9
            assert drift.metadata["mean_prediction"].value > \
                drift.metadata["previous_mean_prediction"].value
        else:  # everyone moved up: "basic" all but vanished, the largest PSI term
            assert drift.metadata["worst_class"].value == "basic"
            assert "most moved: class 'basic'" in drift.description
            assert drift.metadata["worst_class_share"].value < 0.05 < \
                drift.metadata["previous_worst_class_share"].value
            assert drift.metadata["predicted_label_shares"].value["premium"] > 0.5


def test_multiclass_output_with_a_wrong_column_type_is_invalid(pipeline):
    key = (DAY1, MULTICLASS)
    assert all(e.passed for e in _checks(pipeline.score(*key)).values())
    out_dir = pipeline.storage.root_path / f"predictions/{MULTICLASS}/dt={DAY1}"
    victim = out_dir / "part-00002.parquet"
    table = pq.read_table(victim)
    position = table.schema.get_field_index("probability_plus")
    pq.write_table(table.set_column(position, "probability_plus",
                                    table.column(position).cast(pa.float32())), victim)
    manifest_path = out_dir / "_manifests/part-00002.json"
    manifest = json.loads(manifest_path.read_text())
    del manifest["output_bytes"]  # as written before sizes were recorded: schema rule only
    manifest_path.write_text(json.dumps(manifest))

    valid = _checks(run_checks_only(pipeline, *key))["predictions_valid"]
    assert not valid.passed
    assert valid.metadata["problems"].value == {
        "part-00002.parquet": "probability_plus is float, expected double"}
    assert valid.metadata["repairable"].value is False


def test_regression_quality_threshold_is_a_maximum(pipeline):
    """rmse: lower is better, so a model whose holdout rmse is above the threshold is
    kept out of use."""
    before = read_current_model(pipeline.storage, REGRESSION)
    assert before.metrics["rmse"] <= 1.5  # the shipped threshold let it in
    assert registry_model(read_registry(pipeline.registry_path), REGRESSION)[
        "quality_threshold"] == 1.5
    edit_registry(pipeline.registry_path,
                  lambda data: registry_model(data, REGRESSION).update(quality_threshold=0.01))
    result = pipeline.run_job("train_models", REGRESSION, raise_on_error=False)
    (check,) = result.get_asset_check_evaluations()
    assert not check.passed
    assert "> threshold 0.01 (a maximum)" in check.description
    meta = _materialization(result, "trained_model")
    assert meta["is_current"] is False and meta["task"] == "regression"
    assert read_current_model(pipeline.storage, REGRESSION) == before
