"""End-to-end through Dagster on the embedded default: assets, metadata, checks, errors."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow.parquet as pq
import pytest

from batch_assets.definitions import defs
from batch_assets.planning.model_pointer import read_current_model
from batch_assets.planning.scoring_groups import prediction_key
from container.predictors.onedal_trees import onedal_available
from tests.conftest import SMALL_DATA, check_evaluations, materialization, run_checks_only
from tests.support.helpers import corrupt_data_page, framework_predictions, read_outputs
from tests.support.registries import edit_registry, model

DAY = SMALL_DATA.days[0]


def _materialization(result, node="trained_model"):
    (event,) = result.asset_materializations_for_node(node)
    return {k: v.value for k, v in event.metadata.items()}


_checks = check_evaluations


def test_definitions_load_without_settings(monkeypatch):
    for name in list(__import__("os").environ):
        if name.startswith(("BATCH_", "AWS_")):
            monkeypatch.delenv(name)
    definitions = defs()
    graph = definitions.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys == {"trained_model", "predictions/churn_xgb", "predictions/churn_logreg",
                    "predictions/customer_value_xgb", "data/customers"}
    # the delivered data: an external asset (the sensor records its days), upstream of
    # every model of the dataset, day by day
    data = graph.get(dg.AssetKey(["data", "customers"]))
    assert not data.is_materializable and data.partitions_def is not None
    assert data.key in graph.get(prediction_key("churn_xgb")).parent_keys
    churn = graph.get(prediction_key("churn_xgb"))
    assert "2026-11-01" in churn.partitions_def.get_partition_keys()
    # the three models of the customers dataset share one step: one job per day
    assert churn.assets_def.node_def.name == "score_customers"
    assert churn.assets_def.can_subset
    assert churn.assets_def.keys == {prediction_key(m) for m in
                                     ("churn_xgb", "churn_logreg", "customer_value_xgb")}
    checks = {k.name for k in churn.assets_def.check_keys if k.asset_key == churn.key}
    assert checks == {"predictions_complete", "predictions_valid", "predictions_drift"}
    assert definitions.resolve_job_def("score_predictions") is not None


@pytest.mark.parametrize("model", ["churn_xgb", "churn_logreg"])
def test_partition_end_to_end_matches_framework(pipeline, model):
    result = pipeline.score(DAY, model)
    meta = materialization(result, model)
    current = read_current_model(pipeline.storage, model)
    assert meta["backend"] == "local"
    assert meta["instances"] == 2
    assert meta["input_files"] == SMALL_DATA.files_per_day
    assert meta["files_scored_now"] == SMALL_DATA.files_per_day
    assert meta["rows"] == SMALL_DATA.files_per_day * SMALL_DATA.rows_per_file
    assert meta["rows_per_second"] > 0
    path = {"churn_xgb": "oneDAL" if onedal_available() else "xgboost inplace_predict",
            "churn_logreg": "folded linear map"}[model]
    assert meta["predictors"] == f"{path}: {meta['rows']:,} rows"
    assert meta["model_version"] == current.version
    assert meta["job_name"] == f"pred-customers-{DAY.replace('-', '')}-a1"
    assert meta["models_in_job"] == 1
    assert meta["output_location"].endswith(f"predictions/{model}/dt={DAY}/")
    checks = _checks(result)
    assert checks["predictions_complete"].passed and checks["predictions_valid"].passed
    assert checks["predictions_valid"].metadata["files_checked"].value == 5
    assert checks["predictions_valid"].metadata["nan_predictions"].value == 0
    assert checks["predictions_drift"].passed  # no previous day scored: nothing to compare

    bucket = pipeline.storage.root_path
    input_files = sorted((bucket / f"data/customers/dt={DAY}").glob("*.parquet"))
    inputs = pd.concat([pd.read_parquet(p) for p in input_files])
    outputs = read_outputs(bucket / f"predictions/{model}/dt={DAY}").to_pandas()
    assert list(outputs.columns) == ["customer_id", "prediction"]
    assert outputs["customer_id"].is_unique
    assert set(outputs["customer_id"]) == set(inputs["customer_id"])
    expected = framework_predictions(bucket / current.prefix, inputs)
    joined = inputs[["customer_id"]].assign(expected=expected).merge(outputs, on="customer_id")
    assert len(joined) == len(inputs)
    assert (joined["prediction"] - joined["expected"]).abs().max() < 1e-6


def test_rerun_of_complete_partition_does_no_compute(pipeline):
    pipeline.score(DAY, "churn_xgb")
    again = materialization(pipeline.score(DAY, "churn_xgb"), "churn_xgb")
    assert again["nothing_to_do"] is True
    assert again["files_scored_now"] == 0
    assert again["rows"] == SMALL_DATA.files_per_day * SMALL_DATA.rows_per_file
    assert len(pipeline.attempts(DAY, "churn_xgb")) == 1


def test_deleted_output_fails_check_and_rerun_redoes_only_that_file(pipeline):
    pipeline.score(DAY, "churn_logreg")
    out_dir = pipeline.storage.root_path / f"predictions/churn_logreg/dt={DAY}"
    victim = out_dir / "part-00002.parquet"
    before = {p.name: p.read_bytes() for p in out_dir.glob("*.parquet") if p != victim}
    victim.unlink()

    evaluation = _checks(run_checks_only(pipeline, DAY, "churn_logreg"))["predictions_complete"]
    assert not evaluation.passed
    assert evaluation.metadata["missing_files"].value == 1

    meta = materialization(pipeline.score(DAY, "churn_logreg"), "churn_logreg")
    assert meta["files_scored_now"] == 1
    assert meta["files_already_done"] == SMALL_DATA.files_per_day - 1
    assert meta["attempt"] == 2
    assert victim.exists()
    for name, data in before.items():
        assert (out_dir / name).read_bytes() == data, f"{name} was rewritten"


def test_job_failure_keeps_finished_files_and_rerun_resumes(tmp_path, trained_template):
    """One instance, one worker: files are scored in order; a corrupt data page in the
    fourth file fails the job after three files are done. Those three are kept, the
    failure names the file, and after the file is fixed a rerun scores only two."""
    import shutil

    from tests.conftest import make_pipeline, write_test_registry

    shutil.copytree(trained_template, tmp_path / "bucket")
    registry = write_test_registry(tmp_path / "models.toml", xgb_inference="workers = 1",
                                   instance_count=1)
    pipeline = make_pipeline(tmp_path, registry)
    data_file = pipeline.storage.root_path / f"data/customers/dt={DAY}/part-00003.parquet"
    original = data_file.read_bytes()
    corrupt_data_page(data_file)

    failed = pipeline.score(DAY, "churn_xgb", raise_on_error=False)
    assert not failed.success
    failure = failed.get_step_failure_events()[0].step_failure_data.error.message
    assert "part-00003.parquet" in failure
    assert "churn_xgb: 2 of 5 files not scored" in failure
    assert "files already scored are kept" in failure
    out_dir = pipeline.storage.root_path / f"predictions/churn_xgb/dt={DAY}"
    assert sorted(p.name for p in out_dir.glob("*.parquet")) == [
        "part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    assert not [p for p in out_dir.rglob("*") if ".tmp" in p.name]
    (attempt,) = pipeline.attempts(DAY, "churn_xgb")
    assert attempt.status == "Failed" and "part-00003.parquet" in attempt.failure_reason

    data_file.write_bytes(original)
    meta = materialization(pipeline.score(DAY, "churn_xgb"), "churn_xgb")
    assert meta["files_scored_now"] == 2
    assert meta["attempt"] == 2
    assert pq.read_metadata(out_dir / "part-00003.parquet").num_rows == SMALL_DATA.rows_per_file


def test_date_without_data_fails_with_clear_message(pipeline):
    result = pipeline.score("2026-11-20", "churn_xgb", raise_on_error=False)
    assert not result.success
    message = result.get_step_failure_events()[0].step_failure_data.error.message
    assert "no inference data for customers on 2026-11-20" in message
    assert "s3://local-bucket/data/customers/dt=2026-11-20/" in message
    assert pipeline.attempts("2026-11-20", "churn_xgb") == []


def test_missing_success_marker_is_reported(pipeline):
    (pipeline.storage.root_path / f"data/customers/dt={DAY}/_SUCCESS").unlink()
    result = pipeline.score(DAY, "churn_xgb", raise_on_error=False)
    message = result.get_step_failure_events()[0].step_failure_data.error.message
    assert "not marked complete" in message and "_SUCCESS" in message


def _drop_column(path):
    pq.write_table(pq.read_table(path).drop_columns(["f07"]), path)


def _truncate(path):
    path.write_bytes(path.read_bytes()[:-100])  # the footer is gone


def _corrupt_page(path):
    # re-delivered with other row groups (so a new size), then a data page is damaged
    pq.write_table(pq.read_table(path), path, row_group_size=700, write_page_checksum=True)
    corrupt_data_page(path, row_group=1, column=5)


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (_drop_column, ["part-00001.parquet", "'f07'", "missing"]),
        (_truncate, ["part-00001.parquet", "not a readable Parquet file"]),
        (_corrupt_page, ["part-00001.parquet"]),
    ],
    ids=["missing-column", "truncated", "corrupt-page"],
)
def test_bad_redelivered_file_fails_clearly_and_keeps_other_outputs(pipeline, damage, expected):
    """A day is scored; then one file is re-delivered broken. The rerun fails with a
    message naming the file (and column), shows no partial output, and leaves the
    other files' outputs and manifests exactly as they were. The broken file's old
    output and manifest, which described a delivery that no longer exists, are
    removed before the rerun scores it (a rerun may pack files differently, so a
    re-scored file's old output would not be overwritten)."""
    pipeline.score(DAY, "churn_xgb")
    out_dir = pipeline.storage.root_path / f"predictions/churn_xgb/dt={DAY}"
    before = {p.relative_to(out_dir): p.read_bytes() for p in out_dir.rglob("*") if p.is_file()}
    damage(pipeline.storage.root_path / f"data/customers/dt={DAY}/part-00001.parquet")

    result = pipeline.score(DAY, "churn_xgb", raise_on_error=False)
    assert not result.success
    message = result.get_step_failure_events()[0].step_failure_data.error.message
    for text in expected:
        assert text in message
    after = {p.relative_to(out_dir): p.read_bytes() for p in out_dir.rglob("*") if p.is_file()}
    replaced = {Path("part-00001.parquet"), Path("_manifests/part-00001.json")}
    assert replaced <= set(before)
    assert after == {k: v for k, v in before.items() if k not in replaced}, (
        "finished outputs changed or partial output appeared")
    assert not [p for p in pipeline.storage.root_path.rglob("*") if ".tmp" in p.name]
    attempts = pipeline.attempts(DAY, "churn_xgb")
    assert [a.status for a in attempts] == ["Completed", "Failed"]
    assert "part-00001.parquet" in attempts[-1].failure_reason


def test_missing_model_artifact_is_reported(pipeline):
    current = read_current_model(pipeline.storage, "churn_xgb")
    (pipeline.storage.root_path / current.prefix / "model.ubj").unlink()
    result = pipeline.score(DAY, "churn_xgb", raise_on_error=False)
    message = result.get_step_failure_events()[0].step_failure_data.error.message
    assert "model artifact missing" in message and "model.ubj" in message
    assert not (pipeline.storage.root_path / "predictions/churn_xgb").exists()


def test_untrained_model_is_reported(pipeline):
    (pipeline.storage.root_path / "models/churn_logreg/current.json").unlink()
    result = pipeline.score(DAY, "churn_logreg", raise_on_error=False)
    message = result.get_step_failure_events()[0].step_failure_data.error.message
    assert "Materialize trained_model[churn_logreg] first" in message


def test_trained_model_metadata(pipeline):
    result = pipeline.run_job("train_models", "churn_logreg")
    meta = _materialization(result, "trained_model")
    current = read_current_model(pipeline.storage, "churn_logreg")
    assert meta["model_version"] == current.version
    assert meta["framework"] == "sklearn"
    assert meta["training_rows"] == SMALL_DATA.training_rows
    assert 0.6 < meta["holdout_roc_auc"] <= 1.0
    assert meta["job_name"] == "train-churn-logreg-a1"
    assert (pipeline.storage.root_path / current.prefix / "model.joblib").is_file()


def test_model_below_quality_threshold_never_becomes_current(pipeline):
    before = read_current_model(pipeline.storage, "churn_logreg")
    edit_registry(pipeline.registry_path,
                  lambda data: model(data, "churn_logreg").update(quality_threshold=0.999))
    result = pipeline.run_job("train_models", "churn_logreg", raise_on_error=False)
    (check,) = result.get_asset_check_evaluations()
    assert check.check_name == "trained_model_quality" and not check.passed
    assert "< threshold 0.999" in check.description
    meta = _materialization(result, "trained_model")
    assert meta["is_current"] is False
    assert read_current_model(pipeline.storage, "churn_logreg") == before
    assert meta["model_version"] != before.version


def test_attempt_left_pending_by_a_dead_run_is_closed_and_replaced(pipeline):
    """A run that crashed between recording an attempt and submitting its job leaves a
    Pending record; the next run marks it Failed (never submitted) and carries on."""
    pipeline.job_store.create_attempt("score_customers", DAY, lambda a: f"orphan-a{a}",
                                      "run-that-died", "local")
    meta = materialization(pipeline.score(DAY, "churn_xgb"), "churn_xgb")
    first, second = pipeline.attempts(DAY, "churn_xgb")
    assert first.status == "Failed" and "never submitted" in first.failure_reason
    assert second.status == "Completed" and meta["attempt"] == 2
