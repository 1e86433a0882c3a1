"""The scoring engine on the benchmark's workloads (at test size): every row equals
the framework's own predict, fast predictors are used only when they agree, row
order is kept, and native threads stay within the cores given."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from benchmarks.engines import lay_out_instance
from benchmarks.models import load_framework_model
from benchmarks.workloads import FEATURES, KEY_COLUMN, prepare, workload_specs
from container.__main__ import main
from container.contract import NUM_CPUS_ENV_VAR, ROOT_ENV_VAR
from container.contract import ONEDAL_CACHE_FILE as CACHE_FILE
from container.frameworks import load_model
from container.model_bundle import read_metadata
from container.predictors.onedal_trees import onedal_available, onedal_version
from tests.support.helpers import read_outputs

# scikit-learn-intelex (oneDAL) is installed on x86_64 only; elsewhere XGBoost scores.
needs_onedal = pytest.mark.skipif(not onedal_available(), reason="oneDAL is x86_64 only")
FAST_PREDICTOR = {"W1": "oneDAL" if onedal_available() else "xgboost inplace_predict",
                  "W2": "folded linear map"}
FRAMEWORK_PREDICTOR = {"W1": "xgboost inplace_predict", "W2": "scikit-learn predict_proba"}


@pytest.fixture(scope="module")
def workloads(tmp_path_factory):
    root = tmp_path_factory.mktemp("workloads")
    return {spec.name: prepare(spec, root) for spec in workload_specs("tiny")}


def score(tmp_path: Path, monkeypatch, data_dir: Path, model_dir: Path, *args: str,
          cpus: str = "2") -> Path:
    """Run the container's infer on the given channels; returns the output folder."""
    root = tmp_path / "opt_ml"
    output = lay_out_instance(root, data_dir, model_dir)
    monkeypatch.setenv(ROOT_ENV_VAR, str(root))
    monkeypatch.setenv(NUM_CPUS_ENV_VAR, cpus)
    assert main(["infer", *args]) == 0, (root / "output/message").read_text()
    return output


def expected_predictions(data_dir: Path, model_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    inputs = pa.concat_tables(pq.read_table(p) for p in sorted(data_dir.glob("*.parquet")))
    frame = inputs.to_pandas()
    model, _ = load_framework_model(model_dir)
    return frame[KEY_COLUMN].to_numpy(), model.predict_proba(frame[FEATURES])[:, 1]


def manifest_predictors(output: Path) -> set[str]:
    """The predictor paths the manifests record, each manifest's counts summing to its
    rows."""
    paths = set()
    for path in output.glob("_manifests/*.json"):
        manifest = json.loads(path.read_text())
        assert sum(manifest["predictor_rows"].values()) == manifest["rows_out"]
        paths |= set(manifest["predictor_rows"])
    return paths


@pytest.mark.parametrize("name", ["W1", "W2"])
@pytest.mark.parametrize("predictor", ["auto", "framework"])
def test_every_row_equals_the_frameworks_predict(tmp_path, monkeypatch, workloads, name,
                                                 predictor):
    workload = workloads[name]
    output = score(tmp_path, monkeypatch, workload.data_dir, workload.model_dir,
                   "--predictor", predictor, "--batch-rows", "1000")
    scored = read_outputs(output)
    ids, expected = expected_predictions(workload.data_dir, workload.model_dir)
    assert scored.column(KEY_COLUMN).to_numpy().tolist() == ids.tolist()
    worst = np.max(np.abs(scored.column("prediction").to_numpy() - expected))
    assert worst < 1e-6
    chosen = FAST_PREDICTOR[name] if predictor == "auto" else FRAMEWORK_PREDICTOR[name]
    assert manifest_predictors(output) == {chosen}


def test_row_groups_of_one_file_are_scored_in_parallel_and_kept_in_order(
        tmp_path, monkeypatch, workloads):
    """One file of twelve row groups, two workers, batches smaller than a row group:
    the output has every input row once, in input order."""
    workload = workloads["W1"]
    table = pa.concat_tables(pq.read_table(p) for p in workload.input_files)
    data = tmp_path / "data"
    data.mkdir()
    pq.write_table(table, data / "big.parquet", row_group_size=1_000)
    assert pq.ParquetFile(data / "big.parquet").metadata.num_row_groups == 12
    output = score(tmp_path, monkeypatch, data, workload.model_dir, "--batch-rows", "300")
    scored = pq.read_table(output / "big.parquet")
    assert scored.column(KEY_COLUMN).to_pylist() == table.column(KEY_COLUMN).to_pylist()
    _, expected = expected_predictions(data, workload.model_dir)
    assert np.max(np.abs(scored.column("prediction").to_numpy() - expected)) < 1e-6


def assert_matches_framework(output: Path, workload, bundle: Path | None = None) -> None:
    """Every scored row within 1e-6 of the framework model in ``bundle`` (default:
    the workload's own)."""
    _, expected = expected_predictions(workload.data_dir, bundle or workload.model_dir)
    scored = read_outputs(output).column("prediction").to_numpy()
    assert np.max(np.abs(scored - expected)) < 1e-6


def copy_bundle(workload, tmp_path: Path) -> Path:
    bundle = tmp_path / "bundle"
    shutil.copytree(workload.model_dir, bundle)
    return bundle


@needs_onedal
def test_a_cache_of_another_model_is_caught_on_the_first_batch(tmp_path, monkeypatch,
                                                               workloads):
    """A oneDAL cache that does not belong to the booster (a bundle assembled by
    hand, a partial upload) predicts differently: the engine notices on the first
    batch and scores with XGBoost instead."""
    import xgboost as xgb

    from container.predictors.onedal_trees import save_converted

    workload = workloads["W1"]
    bundle = copy_bundle(workload, tmp_path)
    rng = np.random.default_rng(1)
    other = xgb.train({"objective": "binary:logistic", "max_depth": 2},
                      xgb.DMatrix(rng.standard_normal((500, len(FEATURES))),
                                  label=rng.integers(0, 2, 500)), num_boost_round=3)
    assert save_converted(other, bundle / CACHE_FILE)
    output = score(tmp_path, monkeypatch, workload.data_dir, bundle)
    assert manifest_predictors(output) == {"xgboost inplace_predict"}
    assert_matches_framework(output, workload)


@needs_onedal
@pytest.mark.parametrize("cache", ["garbage", "other-version", "missing"])
def test_an_unusable_cache_is_converted_again(tmp_path, monkeypatch, workloads, cache):
    workload = workloads["W1"]
    bundle = copy_bundle(workload, tmp_path)
    path = bundle / CACHE_FILE
    if cache == "garbage":
        path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 3])  # truncated
    elif cache == "other-version":
        cached = pickle.loads(path.read_bytes())
        cached["onedal_version"] = "1999.0.0"
        path.write_bytes(pickle.dumps(cached))
        assert onedal_version() != "1999.0.0"
    else:
        path.unlink()
    output = score(tmp_path, monkeypatch, workload.data_dir, bundle)
    assert manifest_predictors(output) == {"oneDAL"}
    assert_matches_framework(output, workload)


@needs_onedal
def test_native_thread_pools_get_only_the_threads_given(workloads):
    import daal4py

    workload = workloads["W1"]
    metadata = read_metadata(workload.model_dir)
    model = load_model(metadata, workload.model_dir, threads=1)
    assert model.predictor_name == "oneDAL"
    assert daal4py.num_threads() == 1
    config = json.loads(model.booster.save_config())
    assert config["learner"]["generic_param"]["nthread"] == "1"
    load_model(metadata, workload.model_dir, threads=2)
    assert daal4py.num_threads() == 2


def test_with_one_cpu_the_engine_runs_one_worker(tmp_path, monkeypatch, workloads, caplog):
    workload = workloads["W2"]
    with caplog.at_level("INFO", logger="container.infer"):
        score(tmp_path, monkeypatch, workload.data_dir, workload.model_dir, cpus="1")
    assert "1 worker threads x 1 native threads" in caplog.text


def test_a_shard_of_empty_files_publishes_empty_outputs(tmp_path, monkeypatch, workloads):
    workload = workloads["W2"]
    schema = pq.read_schema(workload.input_files[0])
    data = tmp_path / "data"
    data.mkdir()
    pq.write_table(schema.empty_table(), data / "empty.parquet")
    output = score(tmp_path, monkeypatch, data, workload.model_dir)
    assert pq.read_table(output / "empty.parquet").num_rows == 0
    manifest = json.loads((output / "_manifests/empty.json").read_text())
    assert manifest["rows_in"] == manifest["rows_out"] == 0


def test_a_stored_fold_spares_importing_scikit_learn(workloads):
    """The fold training stored for this exact artifact is used as is: the scoring
    process never imports scikit-learn (about 2 s of start-up)."""
    import subprocess
    import sys

    model_dir = workloads["W2"].model_dir
    program = (
        "import sys\nfrom pathlib import Path\n"
        "from container.frameworks import load_model\n"
        "from container.model_bundle import read_metadata\n"
        f"bundle = Path({str(model_dir)!r})\n"
        "model = load_model(read_metadata(bundle), bundle)\n"
        "print(model.predictor_name, 'sklearn' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                            check=True, cwd=Path(__file__).resolve().parents[2])
    assert result.stdout.split() == ["folded", "linear", "map", "False"]


def test_a_fold_of_another_artifact_is_not_used(tmp_path, monkeypatch, workloads):
    """Replace the artifact with another pipeline but keep the old stored fold: the
    digest no longer matches, so the new artifact is folded (and checked) afresh."""
    import joblib

    workload = workloads["W2"]
    bundle = copy_bundle(workload, tmp_path)
    pipeline = joblib.load(bundle / "model.joblib")
    pipeline.steps[-1][1].coef_ = pipeline.steps[-1][1].coef_ * -2.0  # another model
    joblib.dump(pipeline, bundle / "model.joblib")
    output = score(tmp_path, monkeypatch, workload.data_dir, bundle)
    assert manifest_predictors(output) == {"folded linear map"}
    _, expected = expected_predictions(workload.data_dir, bundle)
    _, stale = expected_predictions(workload.data_dir, workload.model_dir)
    scored = read_outputs(output).column("prediction").to_numpy()
    assert np.max(np.abs(scored - expected)) < 1e-6
    assert np.max(np.abs(scored - stale)) > 0.01


def test_progress_is_logged_while_a_big_file_is_written(caplog):
    """One long file must not look stalled: rows are reported before it is done."""
    import time

    from container.scoring import Progress

    progress = Progress("algo-1", files_total=1, rows_total=300, started=time.monotonic(),
                        interval=0.0)
    with caplog.at_level("INFO", logger="container.scoring"):
        progress.rows_written(100)
        progress.rows_written(100)
        progress.rows_written(100)
        progress.file_done()
    lines = [r.getMessage() for r in caplog.records]
    assert [line.split(": ")[1].split(" rows")[0] for line in lines] == [
        "0/1 files, 100/300", "0/1 files, 200/300", "0/1 files, 300/300",
        "1/1 files, 300/300"]
