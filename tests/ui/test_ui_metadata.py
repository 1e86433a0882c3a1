"""What users see in the UI: honest no-ops, typed figures with a legend, the prediction
distribution, runs that belong to the score_predictions job, and which days have data."""

from __future__ import annotations

import json
import os
import re
import time

import dagster as dg

from batch_assets.assets.data_assets import DATA_VERSION_TAG, data_key
from batch_assets.automation.sensors import build_new_data_sensor
from batch_assets.checks.metadata_format import METADATA_LEGEND
from batch_assets.planning.scoring_groups import prediction_key
from batch_assets.registry import load_registry
from container.prediction_stats import unit_histogram
from tests.conftest import SMALL_DATA, materialization
from tests.support.helpers import read_outputs

DAY, NEXT_DAY = SMALL_DATA.days
ROWS = SMALL_DATA.files_per_day * SMALL_DATA.rows_per_file


def _raw(result, model: str) -> dict[str, dg.MetadataValue]:
    (event,) = [e for e in result.get_asset_materialization_events()
                if e.asset_key == prediction_key(model)]
    return dict(event.materialization.metadata)


def _history(instance: dg.DagsterInstance, model: str) -> list[dict]:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=prediction_key(model)), limit=100).records
    return [{k: v.value for k, v in r.asset_materialization.metadata.items()}
            for r in records]


def test_noop_runs_carry_the_real_jobs_figures_so_plots_show_real_jobs(pipeline):
    instance = dg.DagsterInstance.ephemeral()
    firsts = {day: pipeline.score(day, "churn_xgb", "churn_logreg", instance=instance)
              for day in (DAY, NEXT_DAY)}
    first = materialization(firsts[DAY], "churn_xgb")
    assert first["nothing_to_do"] is False and first["rows_per_second"] > 0

    # a backfill over the complete days: a run per day, each with nothing to do
    for day in (DAY, NEXT_DAY):
        again = pipeline.score(day, "churn_xgb", "churn_logreg", instance=instance)
        for model in ("churn_xgb", "churn_logreg"):
            meta = materialization(again, model)
            real = materialization(firsts[day], model)
            assert meta["nothing_to_do"] is True
            assert "job_name" not in meta, "no job ran: the no-op must not claim one"
            assert meta["files_scored_now"] == 0
            assert meta["figures_from_job"] == real["job_name"]
            assert meta["figures_from_run"] == firsts[day].run_id
            assert meta["seconds"] == real["seconds"]
            assert meta["rows_per_second"] == real["rows_per_second"]
            assert meta["predict_seconds"] == real["predict_seconds"]
            assert meta["instances"] == real["instances"]
    assert len(pipeline.attempts(DAY, "churn_xgb")) == 1  # and no job ran
    for model in ("churn_xgb", "churn_logreg"):
        history = _history(instance, model)
        assert len(history) == 4
        # what the seconds and rows/s plots draw: real jobs only, never a zero
        assert all(m["rows_per_second"] > 0 and m["seconds"] > 0 for m in history)


def test_a_sibling_with_nothing_to_do_shows_its_own_last_job(pipeline):
    """After one model's retraining, the job scores that model alone; the sibling's
    no-op names the earlier job that scored it, not the new one."""
    instance = dg.DagsterInstance.ephemeral()
    first = pipeline.score(DAY, "churn_xgb", "churn_logreg", instance=instance)
    pipeline.run_job("train_models", "churn_logreg", instance=instance)
    second = pipeline.score(DAY, "churn_xgb", "churn_logreg", instance=instance)
    retrained = materialization(second, "churn_logreg")
    sibling = materialization(second, "churn_xgb")
    assert retrained["nothing_to_do"] is False
    assert retrained["job_name"].endswith("-a2")
    assert sibling["nothing_to_do"] is True
    assert sibling["figures_from_job"] == materialization(first, "churn_xgb")["job_name"]
    assert sibling["rows_per_second"] == materialization(first, "churn_xgb")[
        "rows_per_second"]


def test_figures_are_typed_rounded_and_in_the_legend(pipeline):
    result = pipeline.score(DAY, "churn_xgb")
    meta = _raw(result, "churn_xgb")
    for key in ("input_files", "files_scored_now", "rows", "rows_scored_now",
                "rows_per_second", "models_in_job", "attempt", "day_scoring_jobs"):
        assert isinstance(meta[key], dg.IntMetadataValue), key
    assert isinstance(meta["nothing_to_do"], dg.BoolMetadataValue)
    assert isinstance(meta["seconds"], dg.FloatMetadataValue)
    assert meta["seconds"].value == round(meta["seconds"].value, 1)
    assert meta["predict_seconds"].value == round(meta["predict_seconds"].value, 4)
    # whole rows/s of the unrounded seconds (the shown seconds are rounded to 0.1)
    rate = ROWS / meta["seconds"].value
    assert abs(meta["rows_per_second"].value - rate) <= max(1, rate * 0.05)
    undocumented = set(meta) - set(METADATA_LEGEND)
    assert not undocumented, f"metadata keys without a legend entry: {undocumented}"

    spec = pipeline.definitions().resolve_asset_graph().get(prediction_key("churn_xgb"))
    legend = spec.metadata["metadata_legend"].value
    assert all(f"`{key}`" in legend for key in meta)


def _histogram_rows(markdown: str) -> list[tuple[str, int]]:
    """(bin or class, rows) of the distribution table's histogram rows."""
    return [(label.strip(), int(count.replace(",", "")))
            for label, count in re.findall(r"^\| ([^|]+) \| ([\d,]+) \| [\d.]+% \|",
                                           markdown, re.MULTILINE)]


def test_prediction_distribution_per_task(pipeline):
    models = ("churn_xgb", "customer_value_xgb", "tier_xgb")
    result = pipeline.score(DAY, *models)
    bucket = pipeline.storage.root_path

    binary = materialization(result, "churn_xgb")["prediction_distribution"]
    predictions = read_outputs(bucket / f"predictions/churn_xgb/dt={DAY}")[
        "prediction"].to_numpy()
    expected, _ = unit_histogram(predictions)
    rows = _histogram_rows(binary)
    assert [label for label, _ in rows][:2] == ["0.0 - 0.1", "0.1 - 0.2"]
    assert [count for _, count in rows] == expected.tolist()
    assert f"{ROWS:,} rows, 0 NaN" in binary
    mean = re.search(r"^\| ([-\d.e]+) \| ([-\d.e]+) \| ([-\d.e]+) \|$", binary, re.MULTILINE)
    assert float(mean[1]) == float(f"{predictions.min():.4g}")
    assert float(mean[2]) == float(f"{predictions.mean():.4g}")
    assert float(mean[3]) == float(f"{predictions.max():.4g}")

    regression = _histogram_rows(materialization(result, "customer_value_xgb")[
        "prediction_distribution"])
    assert regression[0][0].startswith("< ") and regression[-1][0].startswith("≥ ")
    manifest = next((bucket / f"predictions/customer_value_xgb/dt={DAY}/_manifests")
                    .glob("*.json"))
    edges = json.loads(manifest.read_text())["predictions"]["bin_edges"]
    assert len(regression) == len(edges) + 1  # the model's bins, the outer two open
    assert regression[1][0] == f"{edges[0]:.4g} - {edges[1]:.4g}"
    assert sum(count for _, count in regression) == ROWS

    multiclass = materialization(result, "tier_xgb")["prediction_distribution"]
    classes = _histogram_rows(multiclass)
    assert "predicted class" in multiclass
    assert 1 < len(classes) <= 3 and sum(count for _, count in classes) == ROWS


def test_sensors_and_reaper_launch_runs_of_score_predictions(pipeline):
    definitions = pipeline.definitions()
    for name in ("new_data_sensor_customers", "predictions_retry_sensor"):
        assert definitions.resolve_sensor_def(name).job_name == "score_predictions"
    reaper = definitions.resolve_sensor_def("orphan_reaper")
    assert {job.name for job in reaper.jobs} == {"score_predictions", "train_models"}


def _deliver_again(storage, day: str, name: str = "part-00000.parquet") -> None:
    path = storage.root_path / f"data/customers/dt={day}/{name}"
    later = time.time() + 5
    os.utime(path, (later, later))


def test_first_tick_skips_days_already_scored_and_records_deliveries(pipeline):
    registry = load_registry(pipeline.registry_path)
    models = registry.datasets["customers"]
    pipeline.score(DAY, *models)
    pipeline.score(NEXT_DAY, "churn_xgb")  # one model only: the day still needs the rest
    sensor = build_new_data_sensor(registry, "customers", models)

    def tick(cursor=None):
        with dg.build_sensor_context(cursor=cursor,
                                     resources={"storage": pipeline.storage}) as context:
            return sensor(context)

    first = tick()
    assert [r.partition_key for r in first.run_requests] == [NEXT_DAY]
    assert all(r.asset_selection == [prediction_key(m) for m in models]
               for r in first.run_requests)
    deliveries = {e.partition: e for e in first.asset_events}
    assert set(deliveries) == {DAY, NEXT_DAY}  # both delivered, scored or not
    assert all(e.asset_key == data_key("customers") for e in deliveries.values())
    assert deliveries[DAY].metadata["files"].value == SMALL_DATA.files_per_day
    signature = deliveries[DAY].tags[DATA_VERSION_TAG]

    # a re-delivered file of the scored day: asked again (new data version), also by
    # a first tick, whose cheap check sees the input newer than its manifest
    _deliver_again(pipeline.storage, DAY)
    late = tick(first.cursor)
    assert [r.partition_key for r in late.run_requests] == [DAY]
    assert late.asset_events[0].tags[DATA_VERSION_TAG] != signature
    assert DAY in {r.partition_key for r in tick().run_requests}


def test_a_day_without_data_is_told_apart_from_a_day_not_scored(pipeline):
    instance = dg.DagsterInstance.ephemeral()
    empty_day = "2026-11-05"
    result = pipeline.score(empty_day, "churn_xgb", raise_on_error=False, instance=instance)
    assert not result.success
    message = result.get_step_failure_events()[0].step_failure_data.error.message
    assert "no inference data for customers on 2026-11-05" in message
    assert pipeline.attempts(empty_day, "churn_xgb") == []  # failed before any job
    (observation,) = [e.asset_observation_data.asset_observation
                      for e in result.all_events if e.event_type_value == "ASSET_OBSERVATION"]
    assert observation.asset_key == prediction_key("churn_xgb")
    assert observation.partition == empty_day
    assert observation.metadata["data_delivered"].value is False

    # the sensor's delivery records make the data asset's partitions the delivered days
    registry = load_registry(pipeline.registry_path)
    sensor = build_new_data_sensor(registry, "customers", registry.datasets["customers"])
    with dg.build_sensor_context(resources={"storage": pipeline.storage}) as context:
        tick = sensor(context)
    for event in tick.asset_events:
        instance.report_runless_asset_event(event)
    assert instance.get_materialized_partitions(data_key("customers")) == {DAY, NEXT_DAY}
    assert not instance.get_materialized_partitions(prediction_key("churn_xgb"))


def test_format_metadata_types_and_rounds_by_key():
    from batch_assets.checks.metadata_format import format_metadata

    formatted = format_metadata({
        "rows_per_second": 405858.4, "seconds": 12.345, "predict_seconds": 3.14159,
        "billed_instance_seconds": 24.69, "cost_share": 0.33333,
        "estimated_cost_usd": 0.0123456, "mean_prediction": 0.5263006173522026,
        "rows": 10000, "nothing_to_do": True, "job_dir": dg.MetadataValue.path("/x"),
    })
    assert formatted["rows_per_second"] == dg.MetadataValue.int(405858)
    assert formatted["seconds"] == dg.MetadataValue.float(12.3)
    assert formatted["predict_seconds"] == dg.MetadataValue.float(3.1416)
    assert formatted["billed_instance_seconds"] == dg.MetadataValue.float(24.7)
    assert formatted["cost_share"] == dg.MetadataValue.float(0.333)
    assert formatted["estimated_cost_usd"] == dg.MetadataValue.float(0.0123)
    assert formatted["mean_prediction"] == dg.MetadataValue.float(0.5263)
    assert formatted["rows"] == dg.MetadataValue.int(10000)
    assert formatted["nothing_to_do"] == dg.MetadataValue.bool(True)
    assert formatted["job_dir"] == dg.MetadataValue.path("/x")  # typed values pass through
