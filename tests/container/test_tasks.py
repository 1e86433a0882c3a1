"""Tasks end to end in the container: for each task and trained framework, ``train``
writes the task's metadata and ``infer`` writes the output contract's columns with the
framework's own predictions; a model that does not fit its declared task is refused
naming the model, never the data."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batch_assets.planning.model_pointer import read_current_model
from container.__main__ import main
from container.contract import ModelMetadata
from container.environment import write_standalone_config
from container.errors import JobInputError
from container.prediction_columns import checked_predictions
from container.prediction_stats import PredictionStats
from container.predictors.onedal_trees import onedal_available
from resources.storage import LocalBucketStorage
from tests.conftest import SMALL_DATA
from tests.support.helpers import framework_predictions, worst_difference

DAY = SMALL_DATA.days[0]
FILES = ("part-00000.parquet", "part-00001.parquet", "part-00002.parquet")
FEATURES = [f"f{i:02d}" for i in range(10)]
# (framework, task) -> how to get its bundle: a registered test model (trained with
# the session's template) or a training spec for the container's own `train` here
REGISTERED = {("xgboost", "binary"): "churn_xgb", ("sklearn", "binary"): "churn_logreg",
              ("xgboost", "regression"): "customer_value_xgb",
              ("xgboost", "multiclass"): "tier_xgb"}
TRAINED_HERE = {
    ("sklearn", "regression"): {"label": "value", "categorical_features": ["segment"],
                                "features": [*FEATURES, "segment"]},
    ("sklearn", "multiclass"): {"label": "tier", "passthrough_columns": ["segment"]},
}
FAST = {("xgboost", "binary"): "oneDAL", ("xgboost", "regression"): "oneDAL",
        ("xgboost", "multiclass"): "oneDAL", ("sklearn", "binary"): "folded linear map"}


def train_in_container(root: Path, bucket: Path, framework: str, task: str, spec: dict,
                       monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run ``python -m container train`` on the template's training data; the bundle."""
    (root / "processing/input/train").mkdir(parents=True)
    shutil.copy(bucket / "training/customers/part-00000.parquet",
                root / "processing/input/train/part-00000.parquet")
    (root / "processing/input/config").mkdir(parents=True)
    (root / "processing/input/config/spec.json").write_text(json.dumps({
        "name": f"{framework}_{task}", "version": "v1", "framework": framework,
        "task": task, "features": FEATURES, "key_columns": ["customer_id"], **spec}))
    write_standalone_config(root, inputs=("train", "config"), outputs=("model",))
    monkeypatch.setenv("BATCH_OPT_ML_ROOT", str(root))
    assert main(["train"]) == 0, (root / "output/message").read_text()
    return root / "processing/output/model"


@pytest.fixture(scope="module")
def bundles(tmp_path_factory, trained_template) -> dict[tuple[str, str], Path]:
    """A bundle per (framework, task): registered models from the template, the others
    trained here by the container."""
    storage = LocalBucketStorage(root=str(trained_template))
    found = {key: trained_template / read_current_model(storage, model).prefix
             for key, model in REGISTERED.items()}
    with pytest.MonkeyPatch.context() as monkeypatch:
        for (framework, task), spec in TRAINED_HERE.items():
            root = tmp_path_factory.mktemp(f"train_{framework}_{task}")
            found[framework, task] = train_in_container(root, trained_template, framework,
                                                        task, spec, monkeypatch)
    return found


def score(root: Path, bucket: Path, bundle: Path, monkeypatch, *args: str) -> int:
    """Lay out one instance (three of the day's files, the bundle) and run infer."""
    data = root / "processing/input/data"
    data.mkdir(parents=True)
    for name in FILES:
        shutil.copy(bucket / f"data/customers/dt={DAY}" / name, data / name)
    shutil.copytree(bundle, root / "processing/input/model")
    write_standalone_config(root, inputs=("data", "model"), outputs=("predictions",))
    monkeypatch.setenv("BATCH_OPT_ML_ROOT", str(root))
    monkeypatch.setenv("BATCH_NUM_CPUS", "2")
    return main(["infer", *args])


def test_training_writes_each_tasks_metadata(bundles):
    regression = ModelMetadata.from_dict(json.loads(
        (bundles["xgboost", "regression"] / "model.json").read_text()))
    assert regression.task == "regression" and regression.class_labels == []
    assert set(regression.metrics) == {"rmse", "mae", "r2", "holdout_rows"}
    edges = regression.prediction_bin_edges
    assert len(edges) == 9 and edges == sorted(set(edges))  # holdout deciles
    assert regression.passthrough_columns == ["segment"]
    for framework in ("xgboost", "sklearn"):
        multiclass = ModelMetadata.from_dict(json.loads(
            (bundles[framework, "multiclass"] / "model.json").read_text()))
        assert multiclass.class_labels == ["basic", "plus", "premium"]
        assert set(multiclass.metrics) == {"accuracy", "logloss", "holdout_rows"}
        assert multiclass.metrics["accuracy"] > 0.5 and multiclass.prediction_bin_edges == []
    binary = ModelMetadata.from_dict(json.loads(
        (bundles["xgboost", "binary"] / "model.json").read_text()))
    assert set(binary.metrics) == {"roc_auc", "logloss", "accuracy", "holdout_rows"}


@pytest.mark.parametrize("predictor", ["auto", "framework"])
@pytest.mark.parametrize(("framework", "task"), [*REGISTERED, *TRAINED_HERE])
def test_outputs_follow_the_contract_and_equal_the_framework(
        tmp_path, monkeypatch, trained_template, bundles, framework, task, predictor):
    bundle = bundles[framework, task]
    root = tmp_path / "opt_ml"
    assert score(root, trained_template, bundle, monkeypatch, "--predictor", predictor,
                 "--batch-rows", "700") == 0, (root / "output/message").read_text()
    metadata = ModelMetadata.from_dict(json.loads((bundle / "model.json").read_text()))
    inputs = pd.concat(pd.read_parquet(root / "processing/input/data" / name)
                       for name in FILES)
    out_dir = root / "processing/output/predictions"
    outputs = [pq.read_table(out_dir / name) for name in FILES]
    schema = outputs[0].schema
    assert schema.names == metadata.output_column_names()
    for name, type_name in metadata.prediction_columns():
        assert str(schema.field(name).type) == type_name
    scored = pa.concat_tables(outputs).to_pandas()
    assert len(scored) == len(inputs) and scored["customer_id"].is_unique
    assert scored["customer_id"].tolist() == inputs["customer_id"].tolist()  # input order
    for column in metadata.passthrough_columns:
        assert scored[column].equals(inputs[column].reset_index(drop=True)), column

    expected = framework_predictions(bundle, inputs)
    if task == "multiclass":
        columns = [name for name, _ in metadata.prediction_columns()[1:]]
        assert worst_difference(scored[columns].to_numpy(), expected) < 1e-6
        clear = np.sort(expected, axis=1)[:, -1] - np.sort(expected, axis=1)[:, -2] > 1e-6
        labels = np.asarray(metadata.class_labels)[np.argmax(expected, axis=1)]
        assert (scored["predicted_label"].to_numpy()[clear] == labels[clear]).all()
    else:
        assert worst_difference(scored["prediction"].to_numpy(), expected) < 1e-6
    predictors = {path for p in (out_dir / "_manifests").glob("*.json")
                  for path in json.loads(p.read_text())["predictor_rows"]}
    chosen = {"xgboost": "xgboost inplace_predict", "sklearn": "scikit-learn predict"
              if task == "regression" else "scikit-learn predict_proba"}[framework]
    if predictor == "auto" and (framework, task) in FAST and (
            framework == "sklearn" or onedal_available()):
        chosen = FAST[framework, task]
    assert predictors == {chosen}
    summary = json.loads((out_dir / "_manifests/part-00000.json").read_text())["predictions"]
    assert summary["task"] == task and summary["count"] == SMALL_DATA.rows_per_file
    if task == "multiclass":
        assert sum(summary["label_counts"].values()) == SMALL_DATA.rows_per_file
        assert summary["outside_unit_interval"] == 0
    if task == "regression":
        assert summary["bin_edges"] == metadata.prediction_bin_edges
        assert sum(summary["histogram"]) == SMALL_DATA.rows_per_file


def _declare(bundle: Path, tmp_path: Path, **changes) -> Path:
    """A copy of ``bundle`` whose model.json declares ``changes``."""
    copy = tmp_path / "declared"
    shutil.copytree(bundle, copy)
    metadata = json.loads((copy / "model.json").read_text())
    (copy / "model.json").write_text(json.dumps({**metadata, **changes}))
    return copy


@pytest.mark.parametrize("predictor", ["auto", "framework"])
def test_a_multiclass_model_declared_binary_fails_naming_the_model(
        tmp_path, monkeypatch, trained_template, bundles, predictor):
    bundle = _declare(bundles["xgboost", "multiclass"], tmp_path, task="binary",
                      class_labels=[])
    root = tmp_path / "opt_ml"
    assert score(root, trained_template, bundle, monkeypatch, "--predictor", predictor) == 2
    message = (root / "output/message").read_text()
    assert message.startswith("Bad input: model 'tier_xgb'")
    assert "declared task 'binary'" in message and "multiclass model" in message
    assert "re-deliver" not in message and "input file" not in message
    assert not list((root / "processing/output/predictions").glob("*.parquet"))


def test_a_binary_model_declared_multiclass_fails_naming_the_model(
        tmp_path, monkeypatch, trained_template, bundles):
    bundle = _declare(bundles["sklearn", "binary"], tmp_path, task="multiclass",
                      class_labels=["a", "b", "c"])
    root = tmp_path / "opt_ml"
    assert score(root, trained_template, bundle, monkeypatch, "--predictor",
                 "framework") == 2
    message = (root / "output/message").read_text()
    assert "model 'churn_logreg'" in message and "declared task 'multiclass'" in message
    assert "its artifact is a binary model (Pipeline in model.joblib)" in message


def test_a_prediction_of_the_wrong_shape_blames_the_model(bundles):
    """What the engine does with a model whose artifact cannot say its task (any
    framework module's output): a 3-class booster's real output, declared binary."""
    import xgboost as xgb

    booster = xgb.Booster()
    metadata = ModelMetadata.from_dict(json.loads(
        (bundles["xgboost", "multiclass"] / "model.json").read_text()))
    booster.load_model(str(bundles["xgboost", "multiclass"] / metadata.artifact))
    rows = np.random.default_rng(0).standard_normal((50, len(metadata.features)))
    output = booster.inplace_predict(rows)
    assert output.shape == (50, 3)
    binary = ModelMetadata.from_dict({**metadata.to_dict(), "task": "binary",
                                      "class_labels": []})
    with pytest.raises(JobInputError) as error:
        checked_predictions(output, binary, 50, "50 rows of input file part-00007.parquet")
    message = str(error.value)
    assert "model 'tier_xgb'" in message and "declared task 'binary'" in message
    assert "returned shape (50, 3)" in message and "3-class classifier" in message
    assert "input data is not at fault" in message
    two_labels = ModelMetadata.from_dict({**metadata.to_dict(),
                                          "class_labels": ["basic", "plus"]})
    with pytest.raises(JobInputError, match=r"shape \(50, 2\) for its 2 class labels"):
        checked_predictions(output, two_labels, 50, "the first rows")
    assert checked_predictions(output, metadata, 50, "rows").shape == (50, 3)


@pytest.mark.parametrize(("framework", "block", "expected"), [
    ("torch", "torch", ["model 'm' needs framework 'torch'",
                        "pip install 'batch-inference[torch]'"]),
    ("onnx", "container.frameworks.onnx", [
        "model 'm' needs framework 'onnx'", "scoring module container.frameworks.onnx is "
        "missing", "pip install 'batch-inference[onnx]'"]),
    ("xgboost", "xgboost", [
        "model 'm' needs framework 'xgboost'", "the library it needs (xgboost) is not "
        "installed", "pip install batch-inference (its core dependencies include it)"]),
])
def test_a_missing_framework_names_the_extra_to_install(tmp_path, framework, block,
                                                        expected):
    """Run where the library (or our module for it) cannot be imported, as in a core
    install without the extra."""
    (tmp_path / "model.bin").write_bytes(b"\0")
    program = (
        "import sys\n"
        f"sys.modules[{block!r}] = None  # not importable, as if not installed\n"
        "from pathlib import Path\n"
        "from container.contract import ModelMetadata\n"
        "from container.errors import JobInputError\n"
        "from container.frameworks import load_model\n"
        f"metadata = ModelMetadata('m', 'v1', {framework!r}, ['f'], ['id'], 'model.bin')\n"
        "try:\n"
        f"    load_model(metadata, Path({str(tmp_path)!r}))\n"
        "except JobInputError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                            check=True, cwd=Path(__file__).resolve().parents[2], timeout=120)
    for text in expected:
        assert text in result.stdout, result.stdout + result.stderr


def test_regression_statistics_use_open_ended_quantile_bins():
    stats = PredictionStats("regression", bin_edges=[-1.0, 0.0, 2.5])
    stats.add(np.array([-50.0, -1.0, -0.5, 0.0, 2.4, 2.5, 1e6, np.nan]))
    summary = stats.as_dict()
    assert summary["histogram"] == [1, 2, 2, 2]  # an edge value counts in the bin above
    assert summary["outside_unit_interval"] == 0  # no [0, 1] rule for values
    assert (summary["min"], summary["max"], summary["nan_count"]) == (-50.0, 1e6, 1)
    assert summary["bin_edges"] == [-1.0, 0.0, 2.5] and summary["task"] == "regression"


def test_multiclass_statistics_count_labels_and_stray_probabilities():
    stats = PredictionStats("multiclass", class_labels=["a", "b", "c"])
    stats.add(np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.05, 0.9, 0.05]]))
    stats.add(np.array([[0.2, 0.3, 0.5], [np.nan, 0.5, 0.5], [1.2, -0.1, -0.1]]))
    summary = stats.as_dict()
    assert summary["count"] == 6 and summary["nan_count"] == 1
    assert summary["label_counts"] == {"a": 2, "b": 1, "c": 2}
    assert summary["outside_unit_interval"] == 3  # 1.2 and the two -0.1
    assert summary["class_histograms"]["c"] == [1, 1, 0, 0, 0, 1, 0, 0, 1, 0]
    assert sum(summary["histogram"]) == 4  # the predicted class's probability, in [0, 1]
