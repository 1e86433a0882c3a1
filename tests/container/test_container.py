"""The processing container on its own: /opt/ml contract, scoring, errors, parallelism."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batch_assets.planning.model_pointer import read_current_model
from container.__main__ import main
from container.environment import available_cpus, write_standalone_config
from container.parallelism import plan_parallelism
from resources.storage import LocalBucketStorage
from tests.conftest import SMALL_DATA
from tests.support.helpers import framework_predictions

DAY = SMALL_DATA.days[0]


def make_instance(root: Path, bucket: Path, model: str, files: list[str]) -> Path:
    """Lay out one instance's /opt/ml as SageMaker would, under ``root``."""
    storage = LocalBucketStorage(root=str(bucket))
    current = read_current_model(storage, model)
    data = root / "processing/input/data"
    data.mkdir(parents=True)
    for name in files:
        shutil.copy(bucket / f"data/customers/dt={DAY}" / name, data / name)
    shutil.copytree(bucket / current.prefix, root / "processing/input/model")
    write_standalone_config(root, inputs=("data", "model"), outputs=("predictions",))
    return root


@pytest.fixture
def instance(tmp_path, trained_template, monkeypatch):
    def build(model="churn_xgb", files=("part-00000.parquet", "part-00001.parquet",
                                        "part-00002.parquet"), cpus="2"):
        root = make_instance(tmp_path / "opt_ml", trained_template, model, list(files))
        monkeypatch.setenv("BATCH_OPT_ML_ROOT", str(root))
        monkeypatch.setenv("BATCH_NUM_CPUS", cpus)
        return root
    return build


def outputs_of(root: Path) -> pd.DataFrame:
    files = sorted((root / "processing/output/predictions").glob("*.parquet"))
    return pd.concat([pd.read_parquet(f) for f in files]) if files else pd.DataFrame()


def message_of(root: Path) -> str:
    return (root / "output/message").read_text()


@pytest.mark.parametrize("model", ["churn_xgb", "churn_logreg"])
@pytest.mark.parametrize("args", [["--workers", "1", "--batch-rows", "333"],
                                  ["--workers", "2"], []])
def test_infer_equals_framework_predict(instance, trained_template, model, args):
    root = instance(model=model)
    assert main(["infer", *args]) == 0
    inputs = pd.concat(pd.read_parquet(p) for p in
                       sorted((root / "processing/input/data").glob("*.parquet")))
    outputs = outputs_of(root)
    assert outputs["customer_id"].is_unique and len(outputs) == len(inputs)
    expected = framework_predictions(root / "processing/input/model", inputs)
    joined = inputs[["customer_id"]].assign(expected=expected).merge(outputs, on="customer_id")
    assert (joined["prediction"] - joined["expected"]).abs().max() < 1e-6
    manifests = sorted((root / "processing/output/predictions/_manifests").glob("*.json"))
    assert [m.name for m in manifests] == ["part-00000.json", "part-00001.json",
                                           "part-00002.json"]
    for path in manifests:
        manifest = json.loads(path.read_text())
        assert manifest["rows_in"] == manifest["rows_out"] == SMALL_DATA.rows_per_file
        assert manifest["model_name"] == model
    assert not list((root / "processing/.scratch").glob("*")), "scratch files left behind"


def test_empty_shard_succeeds_with_no_output(instance):
    root = instance(files=())
    assert main(["infer"]) == 0
    assert outputs_of(root).empty


def test_missing_column_fails_before_any_output(instance):
    root = instance()
    victim = root / "processing/input/data/part-00001.parquet"
    pq.write_table(pq.read_table(victim).drop_columns(["f13"]), victim)
    assert main(["infer"]) == 2
    message = message_of(root)
    assert "part-00001.parquet" in message and "'f13'" in message and "missing" in message
    assert outputs_of(root).empty


def test_wrong_column_type_is_named(instance):
    root = instance()
    victim = root / "processing/input/data/part-00002.parquet"
    table = pq.read_table(victim)
    index = table.schema.get_field_index("f03")
    table = table.set_column(index, "f03", pa.array(["x"] * table.num_rows))
    pq.write_table(table, victim)
    assert main(["infer"]) == 2
    message = message_of(root)
    assert "part-00002.parquet" in message and "'f03'" in message and "numeric" in message


def test_missing_artifact_is_reported(instance):
    root = instance()
    (root / "processing/input/model/model.ubj").unlink()
    assert main(["infer"]) == 2
    assert "model artifact missing" in message_of(root)
    assert "model.ubj" in message_of(root)


def test_unreadable_artifact_is_reported(instance):
    root = instance(model="churn_logreg")
    (root / "processing/input/model/model.joblib").write_bytes(b"not a pickle")
    assert main(["infer"]) == 2
    assert "not a readable scikit-learn model" in message_of(root)


@pytest.mark.parametrize("cpus", range(1, 9))
@pytest.mark.parametrize("files", [0, 1, 3, 8, 50])
def test_parallelism_never_oversubscribes(cpus, files):
    plan = plan_parallelism(cpus, files)
    assert plan.workers * plan.threads_per_worker <= cpus
    assert plan.workers >= 1 and plan.threads_per_worker >= 1
    if files >= cpus:
        assert plan.workers == cpus
    elif files:
        assert plan.workers == files and plan.threads_per_worker == cpus // files


def test_explicit_knobs_are_capped_by_cores():
    plan = plan_parallelism(4, 10, workers=8, threads_per_worker=4)
    assert plan.workers * plan.threads_per_worker <= 4


def test_cpu_override(monkeypatch):
    monkeypatch.setenv("BATCH_NUM_CPUS", "3")
    assert available_cpus() == 3
    monkeypatch.setenv("BATCH_NUM_CPUS", "three")
    with pytest.raises(ValueError, match="BATCH_NUM_CPUS"):
        available_cpus()


def test_train_reports_missing_label(tmp_path, monkeypatch, trained_template):
    root = tmp_path / "opt_ml"
    (root / "processing/input/train").mkdir(parents=True)
    table = pq.read_table(trained_template / "training/customers/part-00000.parquet")
    pq.write_table(table.drop_columns(["label"]), root / "processing/input/train/t.parquet")
    (root / "processing/input/config").mkdir(parents=True)
    (root / "processing/input/config/spec.json").write_text(json.dumps({
        "name": "m", "version": "v1", "framework": "xgboost", "features": ["f00", "f01"],
        "key_columns": ["customer_id"], "label": "label"}))
    write_standalone_config(root, inputs=("train", "config"), outputs=("model",))
    monkeypatch.setenv("BATCH_OPT_ML_ROOT", str(root))
    assert main(["train"]) == 2
    message = (root / "output/message").read_text()
    assert "t.parquet" in message and "'label'" in message
    assert not (root / "processing/output/model/model.json").exists()
