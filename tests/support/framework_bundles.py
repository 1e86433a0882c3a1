"""Shared by the framework module tests (tests/test_framework_<name>.py): rows with
missing values, model bundles, and the whole container run on one bundle."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from container.contract import (
    DATA_INPUT,
    MODEL_INPUT,
    NUM_CPUS_ENV_VAR,
    PREDICTIONS_OUTPUT,
    ROOT_ENV_VAR,
    ModelMetadata,
    input_path,
    opt_ml_relative,
    output_path,
)
from container.environment import write_standalone_config
from container.model_bundle import write_metadata
from tests.support.helpers import read_outputs

KEY = "row_id"
ROWS = 3_000


def feature_names(count: int) -> list[str]:
    return [f"x{i}" for i in range(count)]


def rows(count: int = ROWS, features: int = 6, missing: float = 0.0,
         seed: int = 0) -> np.ndarray:
    """Standard normal float32 rows; a ``missing`` share of the values is NaN."""
    rng = np.random.default_rng(seed)
    matrix = rng.standard_normal((count, features)).astype(np.float32)
    if missing:
        matrix[rng.random(matrix.shape) < missing] = np.nan
    return matrix


def filled(matrix: np.ndarray, values: dict[str, float], names: list[str]) -> np.ndarray:
    """``matrix`` with each column's NaN replaced by its fill value (float32, as the
    engine fills a float32 column): what a filling model is given."""
    out = matrix.copy()
    for index, name in enumerate(names):
        column = out[:, index]
        column[np.isnan(column)] = np.float32(values[name])
    return out


def record_batch(matrix: np.ndarray, names: list[str]) -> pa.RecordBatch:
    """The rows as the engine reads them (NaN as null, as Parquet files carry them),
    with a key column."""
    columns = [pa.array(np.arange(len(matrix)), pa.int64())]
    columns += [pa.array(matrix[:, i], mask=np.isnan(matrix[:, i])) for i in range(len(names))]
    return pa.RecordBatch.from_arrays(columns, names=[KEY, *names])


def write_bundle(bundle: Path, framework: str, artifact: str, task: str,
                 names: list[str], class_labels: list[str] | None = None,
                 **policies: object) -> ModelMetadata:
    """model.json beside an artifact already in ``bundle``; ``policies``: its
    missing_values, fill_values, nan_predictions (as import writes them)."""
    metadata = ModelMetadata(
        name=f"{framework}_{task}", version="1", framework=framework, features=names,
        key_columns=[KEY], artifact=artifact, task=task, class_labels=class_labels or [],
        **policies)
    write_metadata(metadata, bundle)
    return metadata


def with_verified_export(bundle: Path, metadata: ModelMetadata,
                         holdout: np.ndarray | None = None,
                         fastest: str | None = None) -> ModelMetadata:
    """What ``python -m container import`` adds to a network's bundle: its ONNX export,
    verified against the framework and timed (``container.predictors.verified_export``),
    recorded in model.json. ``fastest`` states the winner instead of the one measured
    (timings on a shared test machine vary), as a bundle imported elsewhere would."""
    from dataclasses import replace

    from container.frameworks import load_model
    from container.predictors.verified_export import export_verified

    model = load_model(metadata, bundle, 2, "framework")
    recorded = replace(metadata, **export_verified(model, metadata, bundle, holdout, 2))
    if fastest is not None:
        recorded = replace(recorded, fastest_predictor=fastest)
    write_metadata(recorded, bundle)
    return recorded


def corrupt(path: Path) -> None:
    """Keep the first half of a file: a truncated download."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _lay_out(tmp_path: Path, bundle: Path, matrix: np.ndarray, names: list[str]) -> Path:
    """An instance root whose data channel holds the rows as two Parquet files of
    500-row row groups and whose model channel is ``bundle``."""
    data = tmp_path / "data"
    data.mkdir()
    table = pa.Table.from_batches([record_batch(matrix, names)])
    half = len(matrix) // 2
    pq.write_table(table.slice(0, half), data / "part-0.parquet", row_group_size=500)
    pq.write_table(table.slice(half), data / "part-1.parquet", row_group_size=500)
    root = tmp_path / "opt_ml"
    for channel, folder in ((DATA_INPUT, data), (MODEL_INPUT, bundle)):
        local = root / opt_ml_relative(input_path(channel))
        local.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(folder, local, target_is_directory=True)
    write_standalone_config(root, inputs=(DATA_INPUT, MODEL_INPUT),
                            outputs=(PREDICTIONS_OUTPUT,))
    return root


def _results(root: Path) -> tuple[pa.Table, dict]:
    output = root / opt_ml_relative(output_path(PREDICTIONS_OUTPUT))
    manifest = json.loads(next(iter(sorted(output.glob("_manifests/*.json")))).read_text())
    return read_outputs(output).sort_by(KEY), manifest


def run_container(tmp_path: Path, monkeypatch, bundle: Path, matrix: np.ndarray,
                  names: list[str], *args: str) -> tuple[pa.Table, dict]:
    """``python -m container infer`` (in this process) on one Parquet file of the rows,
    two files' worth of row groups, on an instance of 2 CPUs; returns the outputs and
    the first manifest."""
    from container.__main__ import main

    root = _lay_out(tmp_path, bundle, matrix, names)
    monkeypatch.setenv(ROOT_ENV_VAR, str(root))
    monkeypatch.setenv(NUM_CPUS_ENV_VAR, "2")
    status = main(["infer", "--batch-rows", "300", *args])
    message = root / "output/message"
    assert status == 0, message.read_text() if message.exists() else status
    return _results(root)


def failed_container(tmp_path: Path, monkeypatch, bundle: Path, matrix: np.ndarray,
                     names: list[str], *args: str) -> str:
    """Like ``run_container`` for a job that must fail: its failure message, and
    checks that no output was written."""
    from container.__main__ import main

    root = _lay_out(tmp_path, bundle, matrix, names)
    monkeypatch.setenv(ROOT_ENV_VAR, str(root))
    monkeypatch.setenv(NUM_CPUS_ENV_VAR, "2")
    assert main(["infer", "--batch-rows", "300", *args]) != 0
    output = root / opt_ml_relative(output_path(PREDICTIONS_OUTPUT))
    assert not list(output.rglob("*.parquet"))
    return (root / "output/message").read_text()


def worst(actual: np.ndarray, expected: np.ndarray) -> float:
    """Largest |actual - expected| / max(1, |expected|) (the engine's agreement rule),
    NaN where only one of the two is NaN."""
    actual = np.asarray(actual, np.float64)
    expected = np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    both_nan = np.isnan(actual) & np.isnan(expected)
    scaled = np.abs(actual - expected) / np.maximum(1.0, np.abs(expected))
    return float(np.max(np.where(both_nan, 0.0, scaled), initial=0.0))



# what a scoring process must not import when a verified export scores
FRAMEWORK_MODULES = ["torch", "tensorflow", "keras", "tf2onnx"]
# scores, then prints the top-level modules of argv[1] (JSON) that the process imported
_SCORE_AND_LIST_MODULES = """
import json, sys
from container.__main__ import main
status = main(["infer", "--batch-rows", "300", *sys.argv[2:]])
imported = {name.split(".")[0] for name in sys.modules}
print(json.dumps({"status": status,
                  "modules": sorted(imported & set(json.loads(sys.argv[1])))}))
"""


def run_container_in_new_process(tmp_path: Path, bundle: Path, matrix: np.ndarray,
                                 names: list[str], *args: str
                                 ) -> tuple[pa.Table, dict, list[str]]:
    """``run_container`` in a fresh Python process (nothing imported yet); also returns
    which of ``FRAMEWORK_MODULES`` that process had imported once it had scored."""
    import subprocess
    import sys

    root = _lay_out(tmp_path, bundle, matrix, names)
    env = {**os.environ, ROOT_ENV_VAR: str(root), NUM_CPUS_ENV_VAR: "2"}
    done = subprocess.run(
        [sys.executable, "-c", _SCORE_AND_LIST_MODULES, json.dumps(FRAMEWORK_MODULES), *args],
        env=env, capture_output=True, text=True, timeout=600, check=False)
    message = root / "output/message"
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["status"] == 0, message.read_text() if message.exists() else done.stderr
    return (*_results(root), report["modules"])
