"""ONNX models (container/frameworks/onnx.py): the engine's predictions are ONNX
Runtime's own output for the declared task (and the exporting library's within
float32 rounding), ZipMap outputs are handled, class columns follow model.json, and
graphs that fit no task or are broken fail naming the file."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest

from container.errors import JobInputError
from tests.support.framework_bundles import (
    corrupt,
    feature_names,
    record_batch,
    rows,
    run_container,
    worst,
    write_bundle,
)

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("skl2onnx")

from skl2onnx import to_onnx  # noqa: E402
from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType  # noqa: E402
from sklearn.ensemble import RandomForestClassifier  # noqa: E402
from sklearn.impute import SimpleImputer  # noqa: E402
from sklearn.linear_model import LinearRegression, LogisticRegression  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402

from container.frameworks.onnx import load  # noqa: E402

NAMES = feature_names(5)
# float32 export of float64 scikit-learn arithmetic: a few units in float32's last place
SKLEARN_TOLERANCE = 1e-5


def targets(matrix: np.ndarray):
    x = np.nan_to_num(matrix)
    binary = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)
    classes = np.array(["cat", "dog", "emu"])[np.digitize(x[:, 1] - x[:, 2], [-0.5, 0.5])]
    return binary, classes, 2 * x[:, 0] - x[:, 3] + 5


def export(estimator, path, zipmap: bool = True, double: bool = False) -> None:
    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    tensor = DoubleTensorType if double else FloatTensorType
    options = None if zipmap else {id(final): {"zipmap": False}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = to_onnx(estimator, initial_types=[("input", tensor([None, len(NAMES)]))],
                        target_opset=17, options=options)
    path.write_bytes(model.SerializeToString())


def onnx_runtime(path, matrix: np.ndarray, output: str) -> np.ndarray:
    """ONNX Runtime's own output on ``matrix`` (the reference)."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run([output], {session.get_inputs()[0].name: matrix})[0]


@pytest.mark.parametrize("zipmap", [True, False])
def test_binary_classifier_probability_of_class_1(tmp_path, zipmap):
    data = rows(features=5, missing=0.05)  # the exported imputer fills them
    binary, _, _ = targets(data)
    estimator = make_pipeline(SimpleImputer(), LogisticRegression()).fit(data, binary)
    export(estimator, tmp_path / "model.onnx", zipmap=zipmap)
    model = load(write_bundle(tmp_path, "onnx", "model.onnx", "binary", NAMES), tmp_path, 2,
                 "auto")
    batch = record_batch(data, NAMES)

    assert model.verify_fast_path(batch) == "no faster predictor for this model"
    predicted = model.predict(batch)

    assert predicted.shape == (len(data),)
    assert model.predictor_name == "ONNX Runtime"
    if not zipmap:  # with ZipMap, ONNX Runtime itself returns one dict per row
        reference = onnx_runtime(tmp_path / "model.onnx", data, "probabilities")[:, 1]
        np.testing.assert_array_equal(predicted, reference)
    assert worst(predicted, estimator.predict_proba(data)[:, 1]) <= SKLEARN_TOLERANCE
    facts = model.facts()
    assert (facts.n_features, facts.task, facts.class_labels) == (5, "binary", ["0", "1"])
    assert facts.feature_names is None  # ONNX records none


def test_multiclass_columns_follow_model_json_class_order(tmp_path):
    data = rows(features=5)
    _, classes, _ = targets(data)
    estimator = RandomForestClassifier(n_estimators=5, max_depth=4, random_state=0)
    estimator.fit(data, classes)
    export(estimator, tmp_path / "model.onnx", zipmap=False)
    declared = ["emu", "cat", "dog"]  # not the graph's (alphabetical) order
    metadata = write_bundle(tmp_path, "onnx", "model.onnx", "multiclass", NAMES, declared)
    model = load(metadata, tmp_path, 2, "auto")

    predicted = model.predict(record_batch(data, NAMES))

    order = [list(estimator.classes_).index(label) for label in declared]
    reference = onnx_runtime(tmp_path / "model.onnx", data, "probabilities")[:, order]
    np.testing.assert_array_equal(predicted, reference)
    assert worst(predicted, estimator.predict_proba(data)[:, order]) <= SKLEARN_TOLERANCE
    facts = model.facts()
    assert (facts.task, facts.class_labels, facts.n_classes) == (
        "multiclass", ["cat", "dog", "emu"], 3)


def test_multiclass_labels_that_are_not_the_graphs_are_refused(tmp_path):
    data = rows(features=5)
    estimator = LogisticRegression().fit(data, targets(data)[1])
    export(estimator, tmp_path / "model.onnx")
    metadata = write_bundle(tmp_path, "onnx", "model.onnx", "multiclass", NAMES,
                            ["cat", "dog", "eel"])
    with pytest.raises(JobInputError, match=r"records classes \['cat', 'dog', 'emu'\]"):
        load(metadata, tmp_path, 1, "auto")


@pytest.mark.parametrize("double", [False, True])
def test_regression_value_per_row(tmp_path, double):
    data = rows(features=5)
    estimator = LinearRegression().fit(data.astype(np.float64), targets(data)[2])
    export(estimator, tmp_path / "model.onnx", double=double)
    model = load(write_bundle(tmp_path, "onnx", "model.onnx", "regression", NAMES),
                 tmp_path, 2, "auto")

    predicted = model.predict(record_batch(data, NAMES))

    assert predicted.shape == (len(data),)
    dtype = np.float64 if double else np.float32
    reference = onnx_runtime(tmp_path / "model.onnx", data.astype(dtype), "variable")[:, 0]
    np.testing.assert_array_equal(predicted, reference)
    # a float64 graph reads float64 columns unrounded: scikit-learn's own values
    tolerance = 1e-12 if double else SKLEARN_TOLERANCE
    assert worst(predicted, estimator.predict(data.astype(np.float64))) <= tolerance
    assert model.facts().n_features == 5


@pytest.mark.parametrize(("task", "outputs"), [("binary", 1), ("multiclass", 3),
                                               ("regression", 1)])
def test_a_torch_exported_network(tmp_path, task, outputs):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    layers = [torch.nn.Linear(5, 16), torch.nn.ReLU(), torch.nn.Linear(16, outputs)]
    layers += {"binary": [torch.nn.Sigmoid()], "multiclass": [torch.nn.Softmax(dim=1)]}.get(
        task, [])
    network = torch.nn.Sequential(*layers).eval()
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(network, (torch.zeros(2, 5),), buffer, dynamo=False,
                          input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "n"}, "y": {0: "n"}})
    (tmp_path / "model.onnx").write_bytes(buffer.getvalue())
    labels = ["a", "b", "c"] if task == "multiclass" else None
    model = load(write_bundle(tmp_path, "onnx", "model.onnx", task, NAMES, labels),
                 tmp_path, 2, "auto")
    data = rows(features=5, missing=0.02)

    predicted = model.predict(record_batch(data, NAMES))

    reference = onnx_runtime(tmp_path / "model.onnx", data, "y")
    np.testing.assert_array_equal(predicted, reference if task == "multiclass"
                                  else reference[:, 0])
    with torch.no_grad():
        own = network(torch.from_numpy(data)).numpy()
    assert worst(predicted, own if task == "multiclass" else own[:, 0]) <= 1e-5
    facts = model.facts()
    assert facts.task == ("multiclass" if task == "multiclass" else None)  # 1 column: either
    assert facts.n_features == 5


def test_a_classifier_declared_regression_is_refused(tmp_path):
    data = rows(features=5)
    export(LogisticRegression().fit(data, targets(data)[0]), tmp_path / "model.onnx")
    metadata = write_bundle(tmp_path, "onnx", "model.onnx", "regression", NAMES)
    with pytest.raises(JobInputError, match=r"declared task 'regression'.*binary model"):
        load(metadata, tmp_path, 1, "auto")


def test_one_input_per_column_is_refused_with_the_fix(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    inputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, [None, 1])
              for name in ("x0", "x1")]
    output = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])
    graph = helper.make_graph([helper.make_node("Add", ["x0", "x1"], ["y"])], "sum",
                              inputs, [output])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(tmp_path / "model.onnx"))
    metadata = write_bundle(tmp_path, "onnx", "model.onnx", "regression", NAMES[:2])
    with pytest.raises(JobInputError, match=r"takes x0 .* x1 .*one float tensor of shape "
                                            r"\(rows, 2\).*initial_types"):
        load(metadata, tmp_path, 1, "auto")


def test_a_graph_for_other_features_is_refused(tmp_path):
    data = rows(features=5)
    export(LinearRegression().fit(data, data[:, 0]), tmp_path / "model.onnx")
    metadata = write_bundle(tmp_path, "onnx", "model.onnx", "regression", [*NAMES, "x5"])
    with pytest.raises(JobInputError, match="declares 6 features, but its artifact takes 5"):
        load(metadata, tmp_path, 1, "auto")


def test_a_corrupt_file_fails_naming_it(tmp_path):
    data = rows(features=5)
    export(LinearRegression().fit(data, data[:, 0]), tmp_path / "model.onnx")
    metadata = write_bundle(tmp_path, "onnx", "model.onnx", "regression", NAMES)
    corrupt(tmp_path / "model.onnx")
    with pytest.raises(JobInputError, match=f"{tmp_path / 'model.onnx'} is not a readable "
                                            "ONNX model"):
        load(metadata, tmp_path, 1, "auto")


def test_the_container_scores_a_zipmap_multiclass_classifier(tmp_path, monkeypatch):
    data = rows(features=5, missing=0.05)
    _, classes, _ = targets(data)
    estimator = make_pipeline(SimpleImputer(), LogisticRegression()).fit(data, classes)
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    export(estimator, bundle / "model.onnx")  # ZipMap: a list of dicts per call
    labels = ["dog", "emu", "cat"]
    # the graph carries its imputer: missing values are its own to handle
    write_bundle(bundle, "onnx", "model.onnx", "multiclass", NAMES, labels,
                 missing_values="native")

    output, manifest = run_container(tmp_path, monkeypatch, bundle, data, NAMES)

    order = [list(estimator.classes_).index(label) for label in labels]
    expected = estimator.predict_proba(data)[:, order]
    scored = np.column_stack([output.column(f"probability_{label}").to_numpy()
                              for label in labels])
    assert worst(scored, expected) <= SKLEARN_TOLERANCE
    assert output.column("predicted_label").to_pylist() == [
        labels[i] for i in scored.argmax(axis=1)]
    assert manifest["predictor_rows"] == {"ONNX Runtime": manifest["rows_out"]}
