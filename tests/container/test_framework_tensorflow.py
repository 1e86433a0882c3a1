"""TensorFlow models (container/frameworks/tensorflow.py), as .keras files and SavedModel
directories: predictions equal the model's own within 1e-5 on either path, the faster
verified path scores each batch size, a converted graph that disagrees (on missing
values) is dropped, and broken or unsafe artifacts fail naming the file. Bundles with
the ONNX export verified at import (container/predictors/verified_export.py) score
without importing TensorFlow, except batches with missing values, on which such an
export disagrees and TensorFlow scores."""

from __future__ import annotations

import os
from dataclasses import replace

import numpy as np
import pytest

from container.contract import DEFAULT_BATCH_ROWS, ONNX_EXPORT_FILE
from container.errors import JobInputError
from container.model_bundle import read_metadata, write_metadata
from tests.support.framework_bundles import (
    corrupt,
    failed_container,
    feature_names,
    filled,
    record_batch,
    rows,
    run_container,
    run_container_in_new_process,
    with_verified_export,
    worst,
    write_bundle,
)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")
pytest.importorskip("onnxruntime")

from container.frameworks.tensorflow import load  # noqa: E402
from container.predictors.fastest import GRAPH_TOLERANCE, MARGIN  # noqa: E402

NAMES = feature_names(6)
LABELS = ["a", "b", "c"]
HEADS = {"binary": (1, "sigmoid"), "multiclass": (3, "softmax"), "regression": (1, None)}
FAST = "ONNX Runtime (tf2onnx)"


def keras_model(task: str) -> keras.Model:
    keras.utils.set_random_seed(0)
    units, activation = HEADS[task]
    return keras.Sequential([keras.Input((len(NAMES),)),
                             keras.layers.Dense(16, activation="relu"),
                             keras.layers.Dense(units, activation=activation)])


def save(tmp_path, model: keras.Model, task: str, kind: str):
    """The model as ``model.keras`` or as a SavedModel directory ``saved_model``."""
    if kind == "keras":
        artifact = "model.keras"
        model.save(tmp_path / artifact)
    else:
        artifact = "saved_model"
        model.export(str(tmp_path / artifact), verbose=False)
    return write_bundle(tmp_path, "tensorflow", artifact, task, NAMES,
                        LABELS if task == "multiclass" else None)


def own(model: keras.Model, matrix: np.ndarray) -> np.ndarray:
    """The model's own predictions in the engine's shape (the reference): Keras's
    ``predict``, which runs the model as a graph. (An eager call differs on missing
    values: graph mode fuses MatMul+BiasAdd+ReLU into one oneDNN kernel that turns NaN
    into 0, eager keeps NaN.)"""
    out = np.asarray(model.predict(matrix, batch_size=len(matrix), verbose=0), np.float64)
    return out[:, 0] if out.shape[1] == 1 else out


@pytest.mark.parametrize("kind", ["keras", "saved_model"])
@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_predictions_equal_the_model_on_the_faster_verified_path(tmp_path, task, kind):
    data = rows()
    network = keras_model(task)
    model = load(save(tmp_path, network, task, kind), tmp_path, threads=2, predictor="auto")
    batch = record_batch(data, NAMES)

    checked = model.verify_fast_path(batch.slice(0, 1_000))
    predicted = model.predict(batch)

    assert predicted.shape == ((len(data), 3) if task == "multiclass" else (len(data),))
    assert worst(predicted, own(network, data)) <= GRAPH_TOLERANCE
    assert "max difference" in checked and "timed" in checked, checked
    assert sorted(model.timings) == [1_000, DEFAULT_BATCH_ROWS]
    for size, (framework, fast) in model.timings.items():
        assert model.uses_fast_path(size) == (fast < MARGIN * framework), model.timings
    facts = model.facts()
    assert (facts.feature_names, facts.n_features) == (None, 6)
    assert facts.task == ("multiclass" if task == "multiclass" else None)
    assert facts.n_classes == (3 if task == "multiclass" else None)


@pytest.mark.parametrize("kind", ["keras", "saved_model"])
def test_missing_values_drop_the_converted_graph(tmp_path, kind):
    """TensorFlow's ReLU turns NaN into 0; ONNX Runtime's keeps NaN. The job's first
    batch shows it and TensorFlow scores."""
    data = rows(missing=0.05)
    network = keras_model("binary")
    model = load(save(tmp_path, network, "binary", kind), tmp_path, 2, "auto")
    batch = record_batch(data, NAMES)
    expected = own(network, data)
    assert not np.isnan(expected).any()  # what makes them disagree

    checked = model.verify_fast_path(batch.slice(0, 1_000))

    assert model.predictor_name.startswith(("Keras", "TensorFlow SavedModel")), checked
    assert worst(model.predict(batch), expected) <= GRAPH_TOLERANCE


def test_framework_predictor_uses_no_converter(tmp_path):
    data = rows(missing=0.05)
    network = keras_model("multiclass")
    model = load(save(tmp_path, network, "multiclass", "keras"), tmp_path, 2, "framework")
    batch = record_batch(data, NAMES)
    assert model.verify_fast_path(batch) == "no faster predictor for this model"
    assert model.predictor_name == "Keras (tf.function)"
    assert worst(model.predict(batch), own(network, data)) <= GRAPH_TOLERANCE


def test_a_saved_model_written_without_keras(tmp_path):
    """tf.saved_model.save of a tf.Module: a regression through its serving signature."""
    weights = np.linspace(-1, 1, len(NAMES)).astype(np.float32)

    class Linear(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable(weights[:, None])

        @tf.function(input_signature=[tf.TensorSpec([None, len(NAMES)], tf.float32)])
        def serve(self, x):
            return {"value": tf.matmul(x, self.w) + 3.0}

    module = Linear()
    tf.saved_model.save(module, str(tmp_path / "linear"), signatures={"serving_default":
                                                                       module.serve})
    metadata = write_bundle(tmp_path, "tensorflow", "linear", "regression", NAMES)
    model = load(metadata, tmp_path, 2, "auto")
    data = rows()
    batch = record_batch(data, NAMES)
    model.verify_fast_path(batch.slice(0, 500))
    assert worst(model.predict(batch), data @ weights + 3.0) <= GRAPH_TOLERANCE
    assert model.facts().n_features == len(NAMES)


def test_a_saved_model_without_a_serving_signature_is_refused(tmp_path):
    module = tf.Module()
    module.v = tf.Variable(1.0)
    tf.saved_model.save(module, str(tmp_path / "bare"))
    metadata = write_bundle(tmp_path, "tensorflow", "bare", "regression", NAMES)
    with pytest.raises(JobInputError, match="bare: the SavedModel has no 'serving_default'"):
        load(metadata, tmp_path, 1, "auto")


def test_a_lambda_layer_is_refused_by_safe_mode(tmp_path):
    network = keras.Sequential([keras.Input((len(NAMES),)),
                                keras.layers.Lambda(lambda x: x * 2),
                                keras.layers.Dense(1, activation="sigmoid")])
    metadata = save(tmp_path, network, "binary", "keras")
    with pytest.raises(JobInputError, match=r"model\.keras is not a loadable Keras model.*"
                                            "Lambda layers are refused"):
        load(metadata, tmp_path, 1, "auto")


@pytest.mark.parametrize("kind", ["keras", "saved_model"])
def test_a_corrupt_artifact_fails_naming_it(tmp_path, kind):
    metadata = save(tmp_path, keras_model("binary"), "binary", kind)
    artifact = tmp_path / metadata.artifact
    corrupt(artifact / "saved_model.pb" if kind == "saved_model" else artifact)
    with pytest.raises(JobInputError, match=f"{artifact} is not a"):
        load(metadata, tmp_path, 1, "auto")


def test_a_model_for_other_features_is_refused(tmp_path):
    save(tmp_path, keras_model("binary"), "binary", "keras")
    metadata = write_bundle(tmp_path, "tensorflow", "model.keras", "binary", NAMES[:5])
    with pytest.raises(JobInputError, match="declares 5 features, but its artifact takes 6"):
        load(metadata, tmp_path, 1, "auto")


@pytest.mark.parametrize("kind", ["keras", "saved_model"])
def test_the_container_scores_a_keras_model(tmp_path, monkeypatch, kind):
    """A .keras file, and a SavedModel directory as the bundle's artifact."""
    data = rows()
    network = keras_model("regression")
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    save(bundle, network, "regression", kind)

    output, manifest = run_container(tmp_path, monkeypatch, bundle, data, NAMES)

    scored = output.column("prediction").to_numpy()
    assert worst(scored, own(network, data)) <= GRAPH_TOLERANCE
    assert set(manifest["predictor_rows"]) <= {"Keras (tf.function)", FAST}
    assert sum(manifest["predictor_rows"].values()) == manifest["rows_out"]


# --- the ONNX export made at import (container/predictors/verified_export.py) ----------

VERIFIED = "ONNX Runtime (ONNX export verified at import)"


@pytest.mark.parametrize("kind", ["keras", "saved_model"])
def test_import_stores_an_export_verified_on_complete_rows(tmp_path, kind):
    metadata = with_verified_export(tmp_path, save(tmp_path, keras_model("multiclass"),
                                                   "multiclass", kind))
    assert metadata.onnx_export == ONNX_EXPORT_FILE and (tmp_path / ONNX_EXPORT_FILE).is_file()
    assert 0 <= metadata.onnx_export_max_difference <= metadata.onnx_export_tolerance == \
        GRAPH_TOLERANCE
    # TensorFlow's fused ReLU turns NaN into 0, ONNX Runtime keeps it: recorded
    assert not metadata.onnx_export_agrees_on_missing
    assert "on rows with missing values" in metadata.onnx_export_note
    assert metadata.fastest_predictor in ("onnxruntime", "framework")


def test_a_verified_export_scores_without_importing_tensorflow(tmp_path):
    data = rows()  # complete rows
    network = keras_model("regression")
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    with_verified_export(bundle, save(bundle, network, "regression", "keras"),
                         fastest="onnxruntime")

    output, manifest, imported = run_container_in_new_process(tmp_path, bundle, data, NAMES)

    assert imported == []
    assert manifest["predictor_rows"] == {VERIFIED: manifest["rows_out"]}
    assert worst(output.column("prediction").to_numpy(), own(network, data)) <= \
        GRAPH_TOLERANCE


def test_a_keras_model_is_given_filled_rows_on_its_verified_export(tmp_path, monkeypatch):
    """Keras in graph mode turns NaN into a number (its fused kernels), ONNX Runtime into
    NaN: neither is a prediction. Filled, every row is a number both paths agree on,
    scored by the export alone and recorded as such."""
    network = keras_model("regression")
    fills = {name: -0.5 + 0.2 * index for index, name in enumerate(NAMES)}
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    metadata = save(bundle, network, "regression", "keras")
    write_metadata(replace(metadata, missing_values="fill", fill_values=fills), bundle)
    with_verified_export(bundle, read_metadata(bundle), fastest="onnxruntime")
    data = rows(missing=0.02, seed=2)

    output, manifest = run_container(tmp_path, monkeypatch, bundle, data, NAMES)

    scored = output.column("prediction").to_numpy(zero_copy_only=False)
    assert not np.isnan(scored).any()
    assert worst(scored, own(network, filled(data, fills, NAMES))) <= GRAPH_TOLERANCE
    assert manifest["predictor_rows"] == {VERIFIED: manifest["rows_out"]}


def test_a_keras_model_refuses_missing_values_by_default(tmp_path, monkeypatch):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    with_verified_export(bundle, save(bundle, keras_model("binary"), "binary", "keras"),
                         fastest="onnxruntime")
    data = rows(missing=0.02, seed=2)

    message = failed_container(tmp_path, monkeypatch, bundle, data, NAMES)

    assert "input file part-0.parquet" in message and "refuses missing values" in message
    first = np.isnan(data[:1_500]).sum(axis=0)
    assert all(f"{name!r} {count:,}" in message
               for name, count in zip(NAMES, first, strict=True) if count)
