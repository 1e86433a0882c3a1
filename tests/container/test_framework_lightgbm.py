"""LightGBM boosters (container/frameworks/lightgbm.py): every row equals LightGBM's own
``predict`` within the engine's 1e-6 (scaled by values above 1) on either path,
oneDAL is used only where its conversion is exact, rows at split thresholds are
LightGBM's, and broken files fail the job naming the file instead of crashing it."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from container.errors import JobInputError
from container.predictors.onedal_trees import onedal_available
from tests.support.framework_bundles import (
    corrupt,
    feature_names,
    record_batch,
    rows,
    run_container,
    worst,
    write_bundle,
)

lgb = pytest.importorskip("lightgbm")

from container.frameworks.lightgbm import OneDalBooster, load  # noqa: E402

needs_onedal = pytest.mark.skipif(not onedal_available(), reason="oneDAL is x86_64 only")
TOLERANCE = 1e-6  # the engine's agreement for trees, scaled by values above 1
NAMES = feature_names(6)
LABELS = ["low", "mid", "high"]  # LightGBM stores none: classes 0, 1, 2 in this order


def labels_for(task: str, matrix: np.ndarray) -> np.ndarray:
    x = np.nan_to_num(matrix)
    if task == "binary":
        return (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)
    if task == "multiclass":
        return np.digitize(x[:, 0] + 0.3 * x[:, 2], [-0.5, 0.5])
    return 3 * x[:, 0] + x[:, 1] ** 2 + 10


PARAMS = {"binary": {"objective": "binary"},
          "multiclass": {"objective": "multiclass", "num_class": 3},
          "regression": {"objective": "regression"}}


def train(task: str, matrix: np.ndarray, rounds: int = 20, **params) -> lgb.Booster:
    parameters = {**PARAMS[task], "verbose": -1, "num_leaves": 15, "num_threads": 1,
                  **params}
    return lgb.train(parameters, lgb.Dataset(matrix, labels_for(task, matrix),
                                             feature_name=NAMES), num_boost_round=rounds)


def bundle_of(tmp_path, booster: lgb.Booster, task: str):
    booster.save_model(str(tmp_path / "model.txt"))
    return write_bundle(tmp_path, "lightgbm", "model.txt", task, NAMES,
                        LABELS if task == "multiclass" else None)


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
@pytest.mark.parametrize("predictor", ["auto", "framework"])
def test_predictions_equal_lightgbm(tmp_path, task, predictor):
    data = rows(missing=0.1)  # LightGBM routes NaN by each split's default direction
    booster = train(task, data)
    metadata = bundle_of(tmp_path, booster, task)
    model = load(metadata, tmp_path, threads=2, predictor=predictor)
    batch = record_batch(data, NAMES)

    checked = model.verify_fast_path(batch.slice(0, 1_000))
    predicted = model.predict(batch)

    expected = booster.predict(data.astype(np.float64))
    assert predicted.shape == ((len(data), 3) if task == "multiclass" else (len(data),))
    assert worst(predicted, expected) <= TOLERANCE
    if predictor == "framework":
        assert model.predictor_name == "lightgbm predict"
        np.testing.assert_array_equal(predicted, expected)  # LightGBM itself, float64 in
    elif onedal_available():
        assert model.predictor_name == "oneDAL", checked
        assert "max difference" in checked
    facts = model.facts()
    assert facts.feature_names == NAMES
    assert facts.n_features == 6
    assert facts.task == task
    assert facts.n_classes == {"binary": 2, "multiclass": 3, "regression": None}[task]


@needs_onedal
def test_rows_at_split_thresholds_are_lightgbms(tmp_path):
    """oneDAL keeps thresholds in float32 and routes values at (or within float32
    rounding of) a threshold differently from LightGBM; those rows are LightGBM's."""
    data = rows(missing=0.0).astype(np.float64)
    booster = train("binary", data)
    model = load(bundle_of(tmp_path, booster, "binary"), tmp_path, 2, "auto")
    assert isinstance(model._fast, OneDalBooster)
    # each row puts one feature at a threshold, or one float64 step either side of it
    probes = []
    for feature, thresholds in model.text.thresholds.items():
        for threshold in thresholds:
            for value in (threshold, np.nextafter(threshold, np.inf),
                          np.nextafter(threshold, -np.inf)):
                row = np.zeros(len(NAMES))
                row[feature] = value
                probes.append(row)
    matrix = np.array(probes)
    batch = pa.RecordBatch.from_arrays([pa.array(matrix[:, i]) for i in range(len(NAMES))],
                                       names=NAMES)  # float64 columns, as pandas writes them
    expected = booster.predict(matrix)

    onedal_alone = model._fast.model.predict_proba(matrix.astype(np.float32))[:, 1]
    assert worst(onedal_alone, expected) > 1e-3, (
        "daal4py now converts LightGBM thresholds exactly: the guard could go")
    assert model.verify_fast_path(batch).startswith("max difference")
    assert model.predictor_name == "oneDAL"
    assert worst(model.predict(batch), expected) <= TOLERANCE
    assert model._fast.near_thresholds(model._fast.prepare(batch, NAMES)[0]).all()


@needs_onedal
@pytest.mark.parametrize(("params", "reason"), [
    ({"objective": "poisson"}, "objective poisson"),
    ({"zero_as_missing": True}, "zero-as-missing splits"),
    ({"sigmoid": 2.0}, "sigmoid:2"),
    ({"linear_tree": True}, "linear trees"),
])
def test_boosters_onedal_would_score_wrongly_keep_lightgbm(tmp_path, params, reason):
    data = rows(missing=0.0)
    data[::7, 0] = 0.0  # zeros for zero_as_missing to treat as missing
    task = "regression" if params.get("objective") == "poisson" else "binary"
    target = np.abs(labels_for(task, data)) if task == "regression" else None
    parameters = {**PARAMS[task], "verbose": -1, "num_leaves": 15, **params}
    booster = lgb.train(parameters, lgb.Dataset(
        data, target if target is not None else labels_for(task, data), feature_name=NAMES),
        num_boost_round=10)
    model = load(bundle_of(tmp_path, booster, task), tmp_path, 2, "auto")
    batch = record_batch(data, NAMES)

    assert reason in model.verify_fast_path(batch)
    assert model.predictor_name == "lightgbm predict"
    assert worst(model.predict(batch), booster.predict(data.astype(np.float64))) <= TOLERANCE


@needs_onedal
def test_categorical_splits_keep_lightgbm(tmp_path):
    data = rows(missing=0.0)
    data[:, 3] = np.random.default_rng(1).integers(0, 6, len(data))
    target = ((data[:, 3] == 2) | (data[:, 0] > 1)).astype(int)
    booster = lgb.train({"objective": "binary", "verbose": -1, "num_leaves": 8},
                        lgb.Dataset(data, target, feature_name=NAMES, categorical_feature=[3]),
                        num_boost_round=10)
    model = load(bundle_of(tmp_path, booster, "binary"), tmp_path, 2, "auto")
    batch = record_batch(data, NAMES)
    assert "categorical splits" in model.verify_fast_path(batch)
    assert worst(model.predict(batch), booster.predict(data.astype(np.float64))) <= TOLERANCE


@needs_onedal
def test_a_fast_path_that_disagrees_is_dropped(tmp_path):
    """A converted model that is not this booster's (a real oneDAL model of another
    booster in the fast path's place) is caught on the first batch."""
    data = rows(missing=0.0)
    booster = train("binary", data)
    model = load(bundle_of(tmp_path, booster, "binary"), tmp_path, 2, "auto")
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    other = load(bundle_of(other_dir, train("binary", data, rounds=3), "binary"), other_dir,
                 2, "auto")
    model._fast = OneDalBooster(other._fast.model, "binary", other._fast.windows, model)
    batch = record_batch(data, NAMES)

    checked = model.verify_fast_path(batch.slice(0, 1_000))

    assert model.predictor_name == "lightgbm predict", checked
    np.testing.assert_array_equal(model.predict(batch), booster.predict(data.astype(np.float64)))


@pytest.mark.parametrize("damage", ["truncated", "garbage", "trees changed"])
def test_a_broken_model_file_fails_naming_it(tmp_path, damage):
    """LightGBM 4.7 crashes the process (segmentation fault) on a truncated model file;
    the module refuses it first."""
    booster = train("binary", rows())
    metadata = bundle_of(tmp_path, booster, "binary")
    artifact = tmp_path / "model.txt"
    if damage == "truncated":
        corrupt(artifact)
    elif damage == "garbage":
        artifact.write_bytes(b"\x89PNG\r\n\x1a\n not a model")
    else:
        artifact.write_text(artifact.read_text().replace("Tree=1\n", "Tree=1\nx=1\n", 1))

    with pytest.raises(JobInputError, match=str(artifact)) as error:
        load(metadata, tmp_path, 1, "auto")
    assert "Booster.save_model" in str(error.value)


def test_a_multiclass_booster_declared_binary_is_refused(tmp_path):
    booster = train("multiclass", rows())
    booster.save_model(str(tmp_path / "model.txt"))
    metadata = write_bundle(tmp_path, "lightgbm", "model.txt", "binary", NAMES)
    with pytest.raises(JobInputError, match=r"declared task 'binary'.*multiclass model"):
        load(metadata, tmp_path, 1, "auto")


def test_the_container_scores_a_multiclass_booster(tmp_path, monkeypatch):
    data = rows(missing=0.1)
    booster = train("multiclass", data)
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    bundle_of(bundle, booster, "multiclass")

    output, manifest = run_container(tmp_path, monkeypatch, bundle, data, NAMES)

    expected = booster.predict(data.astype(np.float64))
    scored = np.column_stack([output.column(f"probability_{label}").to_numpy()
                              for label in LABELS])
    assert worst(scored, expected) <= TOLERANCE
    assert output.column("predicted_label").to_pylist() == [
        LABELS[i] for i in expected.argmax(axis=1)]
    paths = set(manifest["predictor_rows"])
    assert sum(manifest["predictor_rows"].values()) == manifest["rows_out"]
    # oneDAL scores the rows; LightGBM the ones near a split threshold, counted apart
    assert paths <= ({"oneDAL", "lightgbm predict (rows near a split threshold)"}
                     if onedal_available() else {"lightgbm predict"})
    assert ("oneDAL" if onedal_available() else "lightgbm predict") in paths


@needs_onedal
def test_near_zero_regression_sums_of_many_leaves_are_lightgbms_on_onedal(tmp_path):
    """A regression value is a sum of leaves; oneDAL adds them in the matrix's precision.
    Near zero, a float32 sum of 200 trees' leaves was off by up to 4.5e-6 absolute
    (beyond the 1e-6 rule); oneDAL is given float64 rows for regression, so every
    value is within 1e-7 of LightGBM's own float64 sum, near zero included."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((20_000, len(NAMES)))
    y = 0.3 * x[:, 0] - 0.3 * x[:, 1] + 0.05 * rng.standard_normal(len(x))  # around 0
    booster = lgb.train({"objective": "regression", "num_leaves": 63, "verbose": -1},
                        lgb.Dataset(x, y), num_boost_round=200)
    model = load(bundle_of(tmp_path, booster, "regression"), tmp_path, 2, "auto")
    data = rng.standard_normal((20_000, len(NAMES)))
    batch = record_batch(data, NAMES)
    model.verify_fast_path(batch.slice(0, 1_000))
    assert model.predictor_name == "oneDAL"
    predicted, paths = model.predict_recorded(batch)
    expected = booster.predict(data)
    assert np.max(np.abs(predicted - expected)) <= 1e-7
    near_zero = np.abs(expected) < 0.01
    assert near_zero.sum() > 100  # the case in question is there
    assert paths.counts(0, len(data))["oneDAL"] > len(data) // 2


@needs_onedal
def test_missing_values_of_a_booster_trained_without_any_score_as_lightgbm_does(tmp_path):
    """Trained on complete rows, a booster's splits have missing type None: LightGBM
    scores a NaN there as 0.0, where oneDAL would take the split's default branch (off
    by up to 0.99). oneDAL is given 0.0 for those features, so it stays in use and
    every row with a missing value is LightGBM's answer."""
    booster = train("binary", rows(missing=0.0))
    model = load(bundle_of(tmp_path, booster, "binary"), tmp_path, 2, "auto")
    assert model._fast.nan_as_zero == sorted(model.text.thresholds)  # every split feature
    data = rows(missing=0.2, seed=3)
    batch = record_batch(data, NAMES)
    checked = model.verify_fast_path(batch.slice(0, 1_000))  # and on missing values
    assert model.predictor_name == "oneDAL", checked
    assert "with missing values" in checked
    assert worst(model.predict(batch), booster.predict(data.astype(np.float64))) <= TOLERANCE
