"""The contract between orchestration and container: importable alone, records that
read what older code wrote, and infer flags that survive the round trip."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

from container.contract import (
    DEFAULT_BATCH_ROWS,
    FLOAT64,
    STRING,
    FileManifest,
    InferArguments,
    ModelFailure,
    ModelMetadata,
    PackedInput,
    PredictionSummary,
    ScoringPlan,
    input_path,
    is_pack_manifest_name,
    manifest_relative_path,
    opt_ml_relative,
    output_path,
    output_relative_path,
    pack_manifest_relative_path,
    pack_output_relative_path,
    prediction_columns,
)


def test_contract_imports_nothing_outside_the_standard_library():
    code = (
        "import sys; before = set(sys.modules); import container.contract; "
        "new = {m.split('.')[0] for m in set(sys.modules) - before}; "
        "heavy = new & {'numpy', 'pyarrow', 'dagster', 'pandas', 'boto3'}; "
        "assert not heavy, heavy; "
        "foreign = new - set(sys.stdlib_module_names) - {'container'}; "
        "assert not foreign, foreign"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_paths_and_file_names():
    assert input_path("data") == "/opt/ml/processing/input/data"
    assert output_path("predictions") == "/opt/ml/processing/output/predictions"
    assert opt_ml_relative("/opt/ml/processing/input/data") == "processing/input/data"
    with pytest.raises(ValueError, match="not under /opt/ml"):
        opt_ml_relative("/opt/mlx/data")
    assert manifest_relative_path("a/part-1.parquet") == "_manifests/a/part-1.json"
    assert output_relative_path("a/part-1.snappy") == "a/part-1.parquet"
    assert pack_output_relative_path("a/part-1.parquet", 3) == "a/part-1.packed-3.parquet"
    assert pack_manifest_relative_path("a/part-1.parquet", 3) == "_manifests/a/part-1.packed-3.json"
    assert is_pack_manifest_name("_manifests/a/part-1.packed-3.json")
    assert not is_pack_manifest_name("_manifests/a/part-1.json")


def test_model_metadata_reads_bundles_written_before_task_and_keeps_its_json():
    old = {"name": "m", "version": "v1", "framework": "xgboost", "features": ["f1", "f2"],
           "key_columns": ["id"], "artifact": "model.ubj", "categorical_features": [],
           "metrics": {"roc_auc": 0.8}, "training_rows": 10}
    metadata = ModelMetadata.from_dict(old)
    assert metadata.task == "binary"
    assert (metadata.class_labels, metadata.prediction_bin_edges,
            metadata.passthrough_columns) == ([], [], [])
    assert metadata.input_columns == ["id", "f1", "f2"]
    assert metadata.output_column_names() == ["id", "prediction"]
    assert list(metadata.to_dict()) == [*old, "task", "class_labels", "prediction_bin_edges",
                                        "passthrough_columns", "imported_from",
                                        "source_sha256", "network_output",
                                        "fastest_predictor", "onnx_export",
                                        "onnx_export_sha256", "onnx_export_tolerance",
                                        "onnx_export_max_difference",
                                        "onnx_export_verified_on",
                                        "onnx_export_agrees_on_missing",
                                        "predictor_timings", "onnx_export_note",
                                        "missing_values", "fill_values", "fill_statistic",
                                        "nan_predictions"]
    assert (metadata.fastest_predictor, metadata.onnx_export) == ("", "")  # export at job start
    # written before the policies: the framework's defaults
    assert (metadata.resolved_missing_values, metadata.resolved_nan_predictions) == (
        "native", "fail")
    network = ModelMetadata.from_dict({**old, "framework": "torch"})
    assert network.resolved_missing_values == "refuse"  # never a number from a gap
    assert ModelMetadata.from_dict(json.loads(json.dumps(metadata.to_dict()))) == metadata
    with pytest.raises(ValueError, match="unknown field"):
        ModelMetadata.from_dict({**old, "surprise": 1})
    with pytest.raises(ValueError, match="artifact"):
        ModelMetadata.from_dict({k: v for k, v in old.items() if k != "artifact"})


def test_output_columns_per_task():
    """Keys, then passthrough columns (input order is the registry's), then the task's
    prediction columns with their Arrow types; multiclass labels sanitised."""
    base = {"name": "m", "version": "v1", "framework": "xgboost", "features": ["f1", "id"],
            "key_columns": ["id"], "artifact": "model.ubj",
            "passthrough_columns": ["region", "f1"]}
    regression = ModelMetadata.from_dict({**base, "task": "regression"})
    assert regression.input_columns == ["id", "region", "f1"]
    assert regression.output_column_names() == ["id", "region", "f1", "prediction"]
    assert regression.prediction_columns() == [("prediction", FLOAT64)]
    multiclass = ModelMetadata.from_dict({**base, "task": "multiclass",
                                          "class_labels": ["gold", "silver-2", "n/a"]})
    assert multiclass.prediction_columns() == [
        ("predicted_label", STRING), ("probability_gold", FLOAT64),
        ("probability_silver_2", FLOAT64), ("probability_n_a", FLOAT64)]
    assert prediction_columns("binary") == [("prediction", "double")]
    with pytest.raises(ValueError, match=r"'a b' and 'a-b' both become output column "
                                         r"'probability_a_b'.*rename one"):
        prediction_columns("multiclass", ["a b", "a-b"])
    with pytest.raises(ValueError, match="at least 2 class labels"):
        prediction_columns("multiclass", [])
    with pytest.raises(ValueError, match="task 'ranking' is not one of"):
        prediction_columns("ranking")


def _summary() -> dict:
    return {"count": 3, "nan_count": 0, "min": 0.1, "max": 0.9, "sum": 1.5,
            "outside_unit_interval": 0, "histogram": [1, 0, 0, 0, 1, 0, 0, 0, 1, 0]}


def test_file_manifest_reads_older_and_newer_manifests():
    oldest = {"input": "p.parquet", "input_bytes": 100, "output": "p.parquet", "rows_in": 3,
              "rows_out": 3, "model_name": "m", "model_version": "v1", "host": "algo-1",
              "started_at": 1.0, "finished_at": 2.0}
    manifest = FileManifest.from_dict(oldest)
    assert (manifest.output_bytes, manifest.predictions, manifest.job_name) == (None, None, "")

    current = {**oldest, "job_name": "j", "predictor": "oneDAL", "output_bytes": 50,
               "output_sha256": "ab", "predictions": _summary(), "predict_seconds": 0.25}
    manifest = FileManifest.from_dict({**current, "from_a_newer_container": True})
    assert manifest.predictions == PredictionSummary(**_summary())
    assert manifest.predictions.task == "binary"  # written before tasks: binary
    assert manifest.to_dict() == {**current, "packed": None, "predictor_rows": None,
                                  "predictions": {
        **_summary(), "task": "binary", "bin_edges": [], "label_counts": {},
        "class_histograms": {}}}
    assert FileManifest.from_dict(manifest.to_dict()) == manifest
    assert manifest.covered == [PackedInput("p.parquet", 100, 3)]
    # written before rows were counted per path: its one predictor scored every row
    assert manifest.predictor_counts == {"oneDAL": 3}
    counted = FileManifest.from_dict({**current, "predictor_rows": {"oneDAL": 2, "x": 1}})
    assert counted.predictor_counts == {"oneDAL": 2, "x": 1}

    pack = {**current, "input_bytes": 30, "rows_in": 5, "rows_out": 5,
            "output": "p.packed-2.parquet",
            "packed": [{"input": "p.parquet", "input_bytes": 10, "rows": 2},
                       {"input": "q.parquet", "input_bytes": 20, "rows": 3}]}
    manifest = FileManifest.from_dict(pack)
    assert manifest.covered == [PackedInput("p.parquet", 10, 2), PackedInput("q.parquet", 20, 3)]
    assert FileManifest.from_dict(manifest.to_dict()) == manifest
    for bad in ([], [{"input": "p.parquet"}], "p.parquet"):
        with pytest.raises(ValueError):
            FileManifest.from_dict({**pack, "packed": bad})
    with pytest.raises(ValueError, match="rows_out"):
        FileManifest.from_dict({k: v for k, v in oldest.items() if k != "rows_out"})
    with pytest.raises(ValueError, match="JSON object"):
        FileManifest.from_dict(["not", "a", "manifest"])


def test_scoring_plan_and_model_failure_records_are_strict():
    plan = ScoringPlan.from_dict({"models": [
        {"name": "a", "bundle": "a/v1", "output": "a/dt=2026-11-01"},
        {"name": "b", "bundle": "b/v2", "output": "b/dt=2026-11-01", "files": ["p.parquet"],
         "predictor": "framework"}]})
    assert [m.files for m in plan.models] == [None, ["p.parquet"]]
    assert ScoringPlan.from_dict(plan.to_dict()) == plan
    with pytest.raises(ValueError, match="twice"):
        ScoringPlan.from_dict({"models": [plan.to_dict()["models"][0]] * 2})
    with pytest.raises(ValueError, match="non-empty"):
        ScoringPlan.from_dict({"models": []})
    with pytest.raises(ValueError, match="predictor"):
        ScoringPlan.from_dict({"models": [{**plan.to_dict()["models"][0], "predictor": "gpu"}]})
    with pytest.raises(ValueError, match="unknown"):
        ScoringPlan.from_dict({"models": [{**plan.to_dict()["models"][0], "extra": 1}]})
    failure = ModelFailure("a", "algo-1", "job-a1", "bad artifact", True)
    assert ModelFailure.from_dict(failure.to_dict()) == failure


def test_infer_arguments_are_parsed_as_they_are_written():
    parser = argparse.ArgumentParser()
    InferArguments.add_to_parser(parser)
    for arguments in (InferArguments(), InferArguments(1000, 2, 3, "framework"),
                      InferArguments(batch_rows=5, predictor="auto")):
        parsed = InferArguments.from_namespace(parser.parse_args(arguments.to_argv()))
        assert parsed == arguments
    assert InferArguments(batch_rows=1000, predictor="framework").to_argv() == [
        "--batch-rows", "1000", "--predictor", "framework"]
    assert InferArguments().resolved() == InferArguments(DEFAULT_BATCH_ROWS, None, None, "auto")
    with pytest.raises(SystemExit):
        parser.parse_args(["--workers", "0"])


def test_training_spec_is_a_checked_record_of_the_contract():
    """The training job's spec.json crosses the job boundary like ImportSpec: typed on
    both sides, strict about unknown fields, and checked."""
    from container.contract import TrainingSpec

    spec = TrainingSpec(name="m", version="v1", framework="xgboost", features=["f1"],
                        key_columns=["id"], label="label", missing_values="fill",
                        fill_values={"f1": 0.5})
    assert TrainingSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    assert spec.metadata("model.ubj", {}, 10).fill_values == {"f1": 0.5}
    for bad, message in (({"framework": "torch"}, "framework 'torch' is not one of"),
                         ({"task": "ranking"}, "task 'ranking'"),
                         ({"holdout_fraction": 1.0}, "holdout_fraction must be in"),
                         ({"surprise": 1}, "unknown field")):
        with pytest.raises(ValueError, match=message):
            TrainingSpec.from_dict({**spec.to_dict(), **bad})
