"""Importing existing model artifacts (registry ``artifact``), end to end through Dagster
on the embedded default: import, score, versioning by digest, and failures that name
the artifact and the fix without touching the current model version."""

from __future__ import annotations

import io
import json
import re
import tarfile
from pathlib import Path

import dagster as dg
import joblib
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from batch_assets.dev.demo_data import feature_names
from batch_assets.planning.model_pointer import read_current_model
from batch_assets.registry import RegistryError, load_registry
from container.contract import ImportSpec, ModelMetadata
from container.errors import JobInputError
from container.import_model import locate_model
from tests.aws import test_aws_end_to_end
from tests.conftest import SMALL_DATA
from tests.support.helpers import read_outputs, worst_difference
from tests.support.registries import add_models, edit_registry, model

DAY = SMALL_DATA.days[0]
FEATURES = feature_names()  # f00..f31
aws_pipeline = test_aws_end_to_end.aws_pipeline  # S3 + DynamoDB on moto, local runner


def _materialization(result, node="trained_model"):
    (event,) = result.asset_materializations_for_node(node)
    return {k: v.value for k, v in event.metadata.items()}


def _failure(result) -> str:
    assert not result.success
    return result.get_step_failure_events()[0].step_failure_data.error.message


def _training(pipeline) -> pd.DataFrame:
    return pd.read_parquet(pipeline.storage.root_path / "training/customers")


def _inputs(pipeline) -> pd.DataFrame:
    files = sorted((pipeline.storage.root_path / f"data/customers/dt={DAY}").glob("*.parquet"))
    return pd.concat(pd.read_parquet(p) for p in files)


def _xgboost_model(pipeline, label: str = "label", trees: int = 8) -> xgb.Booster:
    """A booster trained by XGBoost itself on the training data (feature names f00..)."""
    frame = _training(pipeline)
    target = frame[label]
    if label == "tier":
        target = target.map({"basic": 0, "plus": 1, "premium": 2})
    kind = xgb.XGBClassifier(n_estimators=trees, max_depth=3, n_jobs=1)
    return kind.fit(frame[FEATURES], target).get_booster()


def _sklearn_model(pipeline):
    """A pipeline with imputation, scaling, one-hot encoding and a logistic regression."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    frame = _training(pipeline)
    numeric = FEATURES[:12]
    model = Pipeline([
        ("features", ColumnTransformer([
            ("numeric", make_pipeline(SimpleImputer(), StandardScaler()), numeric),
            ("segment", make_pipeline(SimpleImputer(strategy="constant", fill_value="?"),
                                      OneHotEncoder(handle_unknown="ignore")), ["segment"]),
        ])),
        ("model", LogisticRegression(max_iter=500)),
    ])
    return model.fit(frame[[*numeric, "segment"]], frame["label"])


def _tarball(path: Path, members: dict[str, bytes]) -> Path:
    """A model.tar.gz as a SageMaker training job leaves it, with the given files."""
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def _entry(name: str, framework: str, artifact: str, features: list[str], *,
           task: str = "binary", holdout: bool = True, extra: str = "") -> str:
    metric = {"binary": ("roc_auc", 0.6), "multiclass": ("accuracy", 0.5),
              "regression": ("rmse", 10.0)}[task]
    lines = [
        "[[models]]", f'name = "{name}"', f'framework = "{framework}"', f'task = "{task}"',
        'dataset = "customers"', f'artifact = "{artifact}"',
        'key_columns = ["customer_id"]', f"features = {json.dumps(features)}",
        'instance_type = "ml.m5.large"', "instance_count = 1",
        f'quality_metric = "{metric[0]}"', f"quality_threshold = {metric[1]}",
    ]
    if holdout:
        label = {"multiclass": "tier", "regression": "value"}.get(task, "label")
        lines += ['holdout_data = "training/customers/"', f'label = "{label}"']
    return "\n" + "\n".join(lines) + "\n" + extra + "\n"


def _register(pipeline, entry: str) -> None:
    add_models(pipeline.registry_path, entry)


def _replace_churn_xgb(pipeline, entry: str) -> None:
    """churn_xgb (trained, current) becomes an import of ``entry``'s artifact."""
    add_models(pipeline.registry_path, entry, replacing="churn_xgb")


def _score(pipeline, model: str) -> pd.DataFrame:
    """Score the day with ``model``; the outputs joined to the inputs, every key once."""
    pipeline.score(DAY, model)
    inputs = _inputs(pipeline)
    outputs = read_outputs(pipeline.storage.root_path / f"predictions/{model}/dt={DAY}")
    outputs = outputs.to_pandas()
    assert outputs["customer_id"].is_unique and len(outputs) == len(inputs)
    joined = inputs.merge(outputs, on="customer_id")
    assert len(joined) == len(inputs)
    return joined


def _bundle(pipeline, model: str) -> tuple[ModelMetadata, Path]:
    current = read_current_model(pipeline.storage, model)
    bundle = pipeline.storage.root_path / current.prefix
    return ModelMetadata.from_dict(json.loads((bundle / "model.json").read_text())), bundle


# --- import and score ------------------------------------------------------------------


@pytest.mark.parametrize("packaging", ["file", "tarball"])
def test_an_xgboost_model_is_imported_and_scores_as_xgboost_does(pipeline, tmp_path, packaging):
    booster = _xgboost_model(pipeline)
    model_json = tmp_path / "model.json"
    booster.save_model(str(model_json))
    artifact = model_json if packaging == "file" else _tarball(
        tmp_path / "model.tar.gz", {"xgboost-model": model_json.read_bytes(),
                                    "code/inference.py": b"print('not the model')\n"})
    _register(pipeline, _entry("imported_xgb", "xgboost", str(artifact), FEATURES))

    meta = _materialization(pipeline.run_job("train_models", "imported_xgb"))
    metadata, bundle = _bundle(pipeline, "imported_xgb")
    assert meta["model_version"] == metadata.version and metadata.version.startswith("imp-")
    assert meta["source"] == "import" and meta["quality_gate"] == "applied"
    assert meta["holdout_rows"] == SMALL_DATA.training_rows
    assert 0.6 < meta["holdout_roc_auc"] <= 1.0
    assert metadata.imported_from == str(artifact)
    assert metadata.source_sha256 == meta["artifact_sha256"]
    assert (bundle / metadata.artifact).read_bytes() == model_json.read_bytes()

    joined = _score(pipeline, "imported_xgb")
    expected = booster.inplace_predict(joined[FEATURES].to_numpy(np.float32), missing=np.nan)
    assert worst_difference(joined["prediction"].to_numpy(), expected) < 1e-6


@pytest.mark.parametrize("packaging", ["file", "tarball-in-bucket"])
def test_a_sklearn_pipeline_is_imported_and_scores_as_sklearn_does(pipeline, tmp_path,
                                                                    packaging):
    model = _sklearn_model(pipeline)
    joblib_file = tmp_path / "pipeline.joblib"
    joblib.dump(model, joblib_file)
    features = [*FEATURES[:12], "segment"]
    if packaging == "file":
        artifact = str(joblib_file)
    else:  # in the local bucket, named by its s3:// URI
        imports = pipeline.storage.root_path / "imports"
        imports.mkdir()
        _tarball(imports / "model.tar.gz", {"model/pipeline.joblib": joblib_file.read_bytes()})
        artifact = "s3://local-bucket/imports/model.tar.gz"
    _register(pipeline, _entry("imported_logreg", "sklearn", artifact, features,
                               extra='categorical_features = ["segment"]'))

    meta = _materialization(pipeline.run_job("train_models", "imported_logreg"))
    assert 0.6 < meta["holdout_roc_auc"] <= 1.0 and meta["artifact"] == artifact
    metadata, bundle = _bundle(pipeline, "imported_logreg")
    assert (bundle / metadata.artifact).read_bytes() == joblib_file.read_bytes()

    joined = _score(pipeline, "imported_logreg")
    expected = model.predict_proba(joined[features])[:, 1]
    assert worst_difference(joined["prediction"].to_numpy(), expected) < 1e-6


def test_a_multiclass_model_is_imported_with_its_declared_class_labels(pipeline, tmp_path):
    booster = _xgboost_model(pipeline, label="tier")
    booster.save_model(str(tmp_path / "tiers.ubj"))
    _register(pipeline, _entry("imported_tiers", "xgboost", str(tmp_path / "tiers.ubj"),
                               FEATURES, task="multiclass",
                               extra='class_labels = ["basic", "plus", "premium"]'))
    meta = _materialization(pipeline.run_job("train_models", "imported_tiers"))
    assert meta["holdout_accuracy"] > 0.5
    metadata, _ = _bundle(pipeline, "imported_tiers")
    assert metadata.class_labels == ["basic", "plus", "premium"]


# --- versioning by digest --------------------------------------------------------------


def test_reimport_of_an_unchanged_artifact_makes_no_version_and_no_job(pipeline, tmp_path):
    artifact = tmp_path / "model.json"
    _xgboost_model(pipeline).save_model(str(artifact))
    _register(pipeline, _entry("imported_xgb", "xgboost", str(artifact), FEATURES,
                               holdout=False))
    first = _materialization(pipeline.run_job("train_models", "imported_xgb"))
    assert first["quality_gate"] == "skipped: no holdout_data"
    current = read_current_model(pipeline.storage, "imported_xgb")
    assert current.version == first["model_version"]

    result = pipeline.run_job("train_models", "imported_xgb")
    again = _materialization(result)
    assert again["import"] == f"unchanged artifact, version {current.version}"
    assert again["model_version"] == current.version
    (event,) = result.asset_materializations_for_node("trained_model")
    assert event.tags["dagster/data_version"] == current.version
    assert read_current_model(pipeline.storage, "imported_xgb") == current
    assert len(pipeline.job_store.attempts("trained_model", "imported_xgb")) == 1

    _xgboost_model(pipeline, trees=9).save_model(str(artifact))  # a changed artifact
    changed = _materialization(pipeline.run_job("train_models", "imported_xgb"))
    assert changed["model_version"] != current.version
    assert read_current_model(pipeline.storage, "imported_xgb").version == \
        changed["model_version"]
    assert len(pipeline.job_store.attempts("trained_model", "imported_xgb")) == 2

    # the same artifact with another declaration (passthrough columns) is another bundle
    edit_registry(pipeline.registry_path, lambda data: model(data, "imported_xgb").update(
        output={"passthrough_columns": ["segment"]}))
    declared = _materialization(pipeline.run_job("train_models", "imported_xgb"))
    assert declared["model_version"] != changed["model_version"]
    assert declared["model_version"][:16] == changed["model_version"][:16]  # same artifact
    assert _bundle(pipeline, "imported_xgb")[0].passthrough_columns == ["segment"]


# --- failures --------------------------------------------------------------------------


def _corrupt_artifact(pipeline, tmp_path) -> tuple[str, str]:
    path = tmp_path / "model.json"
    _xgboost_model(pipeline).save_model(str(path))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return _entry("churn_xgb", "xgboost", str(path), FEATURES, holdout=False), str(path)


def _feature_mismatch(pipeline, tmp_path) -> tuple[str, str]:
    path = tmp_path / "model.json"
    _xgboost_model(pipeline).save_model(str(path))
    other = [f"g{i:02d}" for i in range(32)]
    return _entry("churn_xgb", "xgboost", str(path), other, holdout=False), str(path)


def _task_mismatch(pipeline, tmp_path) -> tuple[str, str]:
    path = tmp_path / "tiers.json"
    _xgboost_model(pipeline, label="tier").save_model(str(path))
    return _entry("churn_xgb", "xgboost", str(path), FEATURES), str(path)


def _tarball_without_model(pipeline, tmp_path) -> tuple[str, str]:
    path = _tarball(tmp_path / "model.tar.gz", {"code/inference.py": b"pass\n",
                                                "README": b"the model is elsewhere\n"})
    return _entry("churn_xgb", "xgboost", str(path), FEATURES), str(path)


def _pickled_dict(pipeline, tmp_path) -> tuple[str, str]:
    """A readable pickle that is no model: a dict around the estimator."""
    path = tmp_path / "model.joblib"
    joblib.dump({"model": _sklearn_model(pipeline), "version": 3}, path)
    return _entry("churn_xgb", "sklearn", str(path), [*FEATURES[:12], "segment"],
                  holdout=False), str(path)


def _missing_local_path(pipeline, tmp_path) -> tuple[str, str]:
    path = str(tmp_path / "nowhere" / "model.json")
    return _entry("churn_xgb", "xgboost", path, FEATURES), path


def _other_bucket(pipeline, tmp_path) -> tuple[str, str]:
    uri = "s3://someone-elses-bucket/models/model.tar.gz"
    return _entry("churn_xgb", "xgboost", uri, FEATURES), uri


def _missing_object(pipeline, tmp_path) -> tuple[str, str]:
    uri = "s3://local-bucket/imports/nothing-here.tar.gz"
    return _entry("churn_xgb", "xgboost", uri, FEATURES), uri


@pytest.mark.parametrize(("make", "job_runs", "expected"), [
    (_corrupt_artifact, True, ["model.json is not a readable xgboost model",
                               "deliver the model file again"]),
    (_feature_mismatch, True, ["was trained on features [f00, f01, f02, f03, f04, f05, ... "
                               "(32 in all)], but the registry declares [g00",
                               "Set features in the registry to the model's feature names"]),
    (_task_mismatch, True, ["is declared task 'binary', but its artifact is a multiclass "
                            "model (XGBoost objective multi:softprob)",
                            "Fix the model's task in the registry"]),
    (_tarball_without_model, True, ["model.tar.gz holds no xgboost model file (looked for "
                                    "xgboost-model, *.json, *.ubj, *.model, *.bst); it holds "
                                    "README, code/inference.py",
                                    "Name the model file with model_file in the registry"]),
    (_pickled_dict, True, ["model.joblib holds a dict, not a scikit-learn estimator or "
                           "pipeline (it has no predict method)",
                           "deliver the fitted model itself, saved with joblib.dump"]),
    (_missing_local_path, False, ["is unreachable: no such file or directory",
                                  "Deliver the model file there or fix the path"]),
    (_other_bucket, False, ["is unreachable: this storage reaches only bucket 'local-bucket'",
                            "Copy the artifact into that bucket (folder "]),
    (_missing_object, False, ["is unreachable: no object and no objects under that prefix",
                              "Upload the model there or fix the URI"]),
], ids=["corrupt", "feature-mismatch", "task-mismatch", "tarball-without-model",
        "pickled-dict", "missing-local-path", "other-bucket", "missing-object"])
def test_a_failed_import_names_the_artifact_and_the_fix_and_keeps_the_current_model(
        pipeline, tmp_path, make, job_runs, expected):
    current = pipeline.storage.root_path / "models/churn_xgb/current.json"
    before = current.read_bytes()
    entry, artifact = make(pipeline, tmp_path)
    _replace_churn_xgb(pipeline, entry)

    message = _failure(pipeline.run_job("train_models", "churn_xgb", raise_on_error=False))
    assert artifact in message
    for text in expected:
        assert text in message
    if make is _pickled_dict:  # read fine: the file is not damaged, it is no model
        assert "damaged" not in message
    assert current.read_bytes() == before
    attempts = pipeline.job_store.attempts("trained_model", "churn_xgb")
    if job_runs:  # a bad artifact: the job fails as bad input, once (not retried)
        assert "Bad input: cannot import model 'churn_xgb' from" in message
        assert "[bad input: not retried]" in message
        assert [a.status for a in attempts] == ["Failed"]
    else:  # nothing to import: no job
        assert attempts == []


# --- finding the model file in what was delivered --------------------------------------


def _spec(framework: str, model_file: str = "") -> ImportSpec:
    return ImportSpec(name="m", version="imp-x", framework=framework, task="binary",
                      features=["a"], key_columns=["id"], artifact_uri="s3://b/model.tar.gz",
                      source_sha256="0" * 64, model_file=model_file)


def _source(tmp_path: Path, files: dict[str, bytes]) -> Path:
    source = tmp_path / "source"
    for name, data in files.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_bytes(data)
    return source


def test_the_model_file_is_found_by_convention_or_named(tmp_path):
    tree = {"saved/saved_model.pb": b"pb", "saved/variables/variables.index": b"i",
            "notes.txt": b"", "extra/model.keras": b"k"}
    source = _source(tmp_path, {"model.tar.gz": b""})
    _tarball(source / "model.tar.gz", tree)
    with pytest.raises(JobInputError) as error:  # a SavedModel and a .keras file
        locate_model(source, _spec("tensorflow"), tmp_path / "a")
    assert "holds 2 files that could be the tensorflow model: extra/model.keras, saved" \
        in str(error.value)
    assert "Name the model file with model_file" in str(error.value)
    found, where = locate_model(source, _spec("tensorflow", "saved"), tmp_path / "b")
    assert found.is_dir() and where == "model.tar.gz: saved"
    found, _ = locate_model(source, _spec("lightgbm"), tmp_path / "c")
    assert found.name == "notes.txt"  # *.txt is LightGBM's convention

    with pytest.raises(JobInputError, match=re.escape("model_file '../x' is not in model.tar")):
        locate_model(source, _spec("onnx", "../x"), tmp_path / "d")


def test_a_single_file_is_the_model_whatever_its_name(tmp_path):
    source = _source(tmp_path, {"weights.bin": b"..."})
    found, where = locate_model(source, _spec("xgboost"), tmp_path / "s")
    assert found.name == "weights.bin" and where == "weights.bin"
    with pytest.raises(JobInputError, match="remove model_file"):
        locate_model(source, _spec("xgboost", "other.json"), tmp_path / "t")


def test_a_tarball_that_escapes_its_folder_is_refused(tmp_path):
    source = _source(tmp_path, {})
    source.mkdir()
    with tarfile.open(source / "model.tar.gz", "w:gz") as archive:
        info = tarfile.TarInfo("../../evil.json")
        info.size = 2
        archive.addfile(info, io.BytesIO(b"{}"))
    with pytest.raises(JobInputError, match=re.escape("was refused: member '../../evil")):
        locate_model(source, _spec("xgboost"), tmp_path / "x")
    assert not (tmp_path / "evil.json").exists()


# --- the registry ----------------------------------------------------------------------


@pytest.mark.parametrize(("change", "message"), [
    ('artifact = "model.json"\ntraining_data = "training/customers/"',
     "give exactly one of training_data"),
    ('artifact = "http://example.com/model.json"', "is not an s3://bucket/key URI"),
    ('artifact = "s3://bucket-only"', "is not an s3://bucket/key URI"),
    ('artifact = "model.json"\nholdout_data = "training/customers/"',
     "holdout_data needs label"),
    ('artifact = "model.json"\nmodel_file = "../escape"', "model_file must be a relative path"),
    ('artifact = "model.json"\ntask = "multiclass"',
     "an imported multiclass model needs class_labels"),
    ('artifact = "model.json"\nclass_labels = ["a", "b"]', "class_labels apply to multiclass"),
    ('training_data = "training/customers/"\nlabel = "label"\nmodel_file = "x"',
     "model_file applies to imported models only"),
    ('artifact = "model.json"\n[models.output]\nnetwork_output = "logit"',
     "network_output applies to imported torch, tensorflow and onnx classifiers only"),
    ('artifact = "model.json"\n[models.output]\nnetwork_output = "raw"',
     "output.network_output must be one of probability, logit"),
])
def test_registry_import_fields_are_validated(tmp_path, change, message):
    base = _entry("m", "xgboost", "x", FEATURES, holdout=False).replace('artifact = "x"\n', "")
    base = base.replace('task = "binary"\n', "")
    if 'task = "multiclass"' in change:
        base = base.replace('"roc_auc"', '"accuracy"')
    (tmp_path / "models.toml").write_text(
        'partitions_start_date = "2026-11-01"\n' + base + change + "\n")
    with pytest.raises(RegistryError) as error:
        load_registry(tmp_path / "models.toml")
    assert message in str(error.value)


def test_a_relative_artifact_path_is_relative_to_the_registry(tmp_path):
    (tmp_path / "models.toml").write_text(
        'partitions_start_date = "2026-11-01"\n'
        + _entry("m", "onnx", "artifacts/model.onnx", FEATURES, holdout=False))
    spec = load_registry(tmp_path / "models.toml").get("m")
    assert spec.artifact == str(tmp_path / "artifacts/model.onnx")
    assert spec.imported and spec.label == "" and spec.training_data == ""


# --- the other frameworks: a tiny model made here, imported and scored ----------------

DENSE = [f"x{i}" for i in range(6)]


def _dense_data(pipeline) -> pd.DataFrame:
    """A dataset ``dense`` without missing values (networks propagate NaN): two files of
    the day and a holdout file with a 0/1 label; returns the day's rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(3)
    root = pipeline.storage.root_path
    day = root / f"data/dense/dt={DAY}"
    day.mkdir(parents=True)
    frames = []
    for index, part in enumerate(("holdout", "part-00000", "part-00001")):
        matrix = rng.standard_normal((1_500, len(DENSE))).astype(np.float32)
        frame = pd.DataFrame(matrix, columns=DENSE)
        frame.insert(0, "customer_id", np.arange(index * 10_000, index * 10_000 + 1_500))
        if part == "holdout":
            frame["label"] = (matrix[:, 0] + 0.5 * matrix[:, 1] > 0).astype(np.int64)
            (root / "holdout/dense").mkdir(parents=True)
            pq.write_table(pa.Table.from_pandas(frame, preserve_index=False),
                           root / "holdout/dense/part-00000.parquet")
        else:
            pq.write_table(pa.Table.from_pandas(frame, preserve_index=False),
                           day / f"{part}.parquet")
            frames.append(frame)
    (day / "_SUCCESS").write_bytes(b"")
    return pd.concat(frames)


def _import_and_score(pipeline, name: str, framework: str, artifact: Path,
                      holdout: bool, output: str = "") -> pd.DataFrame:
    entry = _entry(name, framework, str(artifact), DENSE, holdout=False)
    entry = entry.replace('dataset = "customers"', 'dataset = "dense"')
    if holdout:
        entry += 'holdout_data = "holdout/dense/"\nlabel = "label"\n'
    if output:
        entry += f'[models.output]\nnetwork_output = "{output}"\n'
    _register(pipeline, entry)
    meta = _materialization(pipeline.run_job("train_models", name))
    assert meta["quality_gate"] == ("applied" if holdout else "skipped: no holdout_data")
    assert not holdout or meta["holdout_roc_auc"] > 0.9
    pipeline.score(DAY, name)
    outputs = read_outputs(pipeline.storage.root_path / f"predictions/{name}/dt={DAY}")
    return outputs.to_pandas()


def _expect(outputs: pd.DataFrame, inputs: pd.DataFrame, expected, tolerance: float) -> None:
    assert outputs["customer_id"].is_unique and len(outputs) == len(inputs)
    joined = inputs.assign(expected=np.asarray(expected, np.float64).reshape(-1)).merge(
        outputs, on="customer_id")
    assert len(joined) == len(inputs)
    assert worst_difference(joined["prediction"], joined["expected"]) < tolerance


def _holdout_frame(pipeline) -> pd.DataFrame:
    return pd.read_parquet(pipeline.storage.root_path / "holdout/dense")


def _assert_verified_export(pipeline, name: str, agrees_on_missing: bool) -> None:
    """The imported network's bundle holds its ONNX export, verified (on synthetic rows:
    these imports have no holdout data) and bound to its digest."""
    import hashlib

    from container.contract import ONNX_EXPORT_FILE

    metadata, bundle = _bundle(pipeline, name)
    graph = bundle / ONNX_EXPORT_FILE
    assert metadata.onnx_export == ONNX_EXPORT_FILE and graph.is_file()
    assert metadata.onnx_export_sha256 == hashlib.sha256(graph.read_bytes()).hexdigest()
    assert 0 <= metadata.onnx_export_max_difference <= metadata.onnx_export_tolerance == 1e-5
    assert metadata.onnx_export_verified_on.endswith("synthetic rows (seed 0)")
    assert metadata.onnx_export_agrees_on_missing is agrees_on_missing
    assert metadata.fastest_predictor in ("onnxruntime", "framework")


def test_a_torchscript_module_with_holdout_data_is_verified_on_the_holdout(pipeline,
                                                                         tmp_path):
    torch = pytest.importorskip("torch")
    inputs = _dense_data(pipeline)
    holdout = _holdout_frame(pipeline)
    # a logistic regression trained with its loss on logits (no sigmoid in the module, as
    # BCEWithLogitsLoss users write it), declared network_output = "logit"
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(len(DENSE), 1))
    x = torch.tensor(holdout[DENSE].to_numpy(np.float32))
    y = torch.tensor(holdout["label"].to_numpy(np.float32)).reshape(-1, 1)
    optimizer = torch.optim.Adam(module.parameters(), lr=0.1)
    for _ in range(100):
        optimizer.zero_grad()
        torch.nn.functional.binary_cross_entropy_with_logits(module(x), y).backward()
        optimizer.step()
    torch.jit.save(torch.jit.script(module.eval()), str(tmp_path / "model.pt"))
    outputs = _import_and_score(pipeline, "holdout_torch", "torch", tmp_path / "model.pt",
                                True, output="logit")
    metadata, _ = _bundle(pipeline, "holdout_torch")
    assert metadata.network_output == "logit"
    with torch.no_grad():
        logits = module(torch.tensor(inputs[DENSE].to_numpy(np.float32))).numpy()
    _expect(outputs, inputs, 1 / (1 + np.exp(-logits.astype(np.float64))), 1e-5)
    assert metadata.onnx_export_verified_on == f"{len(holdout):,} holdout rows"
    assert metadata.onnx_export_max_difference <= metadata.onnx_export_tolerance


def test_a_lightgbm_model_is_imported_and_scores_as_lightgbm_does(pipeline, tmp_path):
    lgb = pytest.importorskip("lightgbm")
    inputs = _dense_data(pipeline)
    holdout = _holdout_frame(pipeline)
    booster = lgb.train({"objective": "binary", "verbose": -1, "num_leaves": 7,
                         "num_threads": 1},
                        lgb.Dataset(holdout[DENSE], holdout["label"], feature_name=DENSE),
                        num_boost_round=10)
    booster.save_model(str(tmp_path / "model.txt"))
    artifact = _tarball(tmp_path / "model.tar.gz",
                        {"model.txt": (tmp_path / "model.txt").read_bytes()})
    outputs = _import_and_score(pipeline, "imported_lgbm", "lightgbm", artifact, True)
    _expect(outputs, inputs, booster.predict(inputs[DENSE].to_numpy(np.float64)), 1e-6)


def test_an_onnx_model_is_imported_and_scores_as_onnx_runtime_does(pipeline, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("skl2onnx")
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression

    inputs = _dense_data(pipeline)
    holdout = _holdout_frame(pipeline)
    model = LogisticRegression().fit(holdout[DENSE].to_numpy(np.float32), holdout["label"])
    final = {id(model): {"zipmap": False}}
    graph = to_onnx(model, initial_types=[("input", FloatTensorType([None, len(DENSE)]))],
                    target_opset=17, options=final)
    (tmp_path / "model.onnx").write_bytes(graph.SerializeToString())
    outputs = _import_and_score(pipeline, "imported_onnx", "onnx", tmp_path / "model.onnx",
                                True)
    session = ort.InferenceSession(str(tmp_path / "model.onnx"),
                                   providers=["CPUExecutionProvider"])
    probabilities = session.run(["probabilities"],
                                {"input": inputs[DENSE].to_numpy(np.float32)})[0]
    _expect(outputs, inputs, probabilities[:, 1], 1e-6)


def test_a_torchscript_module_is_imported_and_scores_as_torch_does(pipeline, tmp_path):
    torch = pytest.importorskip("torch")
    inputs = _dense_data(pipeline)
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(len(DENSE), 8), torch.nn.ReLU(),
                                 torch.nn.Linear(8, 1), torch.nn.Sigmoid()).eval()
    torch.jit.save(torch.jit.script(module), str(tmp_path / "model.pt"))
    outputs = _import_and_score(pipeline, "imported_torch", "torch", tmp_path / "model.pt",
                                False)
    _assert_verified_export(pipeline, "imported_torch", agrees_on_missing=True)
    with torch.no_grad():
        expected = module(torch.tensor(inputs[DENSE].to_numpy(np.float32))).numpy()
    _expect(outputs, inputs, expected, 1e-5)  # the engine's float32 graph tolerance


def test_a_keras_model_is_imported_and_scores_as_keras_does(pipeline, tmp_path):
    pytest.importorskip("tensorflow")
    keras = pytest.importorskip("keras")
    inputs = _dense_data(pipeline)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((len(DENSE),)),
                              keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.save(tmp_path / "model.keras")
    outputs = _import_and_score(pipeline, "imported_keras", "tensorflow",
                                tmp_path / "model.keras", False)
    _assert_verified_export(pipeline, "imported_keras", agrees_on_missing=False)
    expected = model.predict(inputs[DENSE].to_numpy(np.float32), verbose=0)
    _expect(outputs, inputs, expected, 1e-5)  # the engine's float32 graph tolerance


def test_an_artifact_in_another_s3_bucket_is_imported_on_the_s3_storage(
        aws_pipeline, tmp_path, moto_endpoint):
    """On S3 a model is read from another bucket with the storage's own client, copied
    into the model store and imported by the job; importing it again does nothing."""
    import boto3

    from batch_assets.definitions import build_definitions
    from tests.conftest import QUIET
    from tests.support.aws import REGION

    _, resources = aws_pipeline
    storage = resources["storage"]
    theirs = f"training-output-{storage.bucket}"
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name=REGION)
    s3.create_bucket(Bucket=theirs)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.standard_normal((500, 32)), columns=FEATURES)
    booster = xgb.XGBClassifier(n_estimators=4, max_depth=2).fit(
        frame, (frame["f00"] > 0).astype(int)).get_booster()
    booster.save_model(str(tmp_path / "xgboost-model"))  # UBJSON, as SageMaker names it
    _tarball(tmp_path / "model.tar.gz",
             {"xgboost-model": (tmp_path / "xgboost-model").read_bytes()})
    s3.upload_file(str(tmp_path / "model.tar.gz"), theirs, "job-7/output/model.tar.gz")
    uri = f"s3://{theirs}/job-7/output/model.tar.gz"
    registry = tmp_path / "models.toml"  # the fixture's registry, plus the import
    add_models(registry, _entry("imported_xgb", "xgboost", uri, FEATURES, holdout=False))
    definitions = build_definitions(registry, resources)

    def materialize() -> dict:
        result = definitions.resolve_job_def("train_models").execute_in_process(
            partition_key="imported_xgb", instance=dg.DagsterInstance.ephemeral(),
            run_config=QUIET)
        return _materialization(result)

    meta = materialize()
    current = read_current_model(storage, "imported_xgb")
    assert meta["model_version"] == current.version and meta["artifact"] == uri
    stored = [o.key for o in storage.list_objects("models/imported_xgb/sources/")]
    assert [key.rsplit("/", 1)[-1] for key in stored] == ["model.tar.gz"]
    bundle = ModelMetadata.from_dict(storage.read_json(current.prefix + "model.json"))
    assert storage.read_bytes(current.prefix + bundle.artifact) == \
        (tmp_path / "xgboost-model").read_bytes()
    assert materialize()["import"] == f"unchanged artifact, version {current.version}"
