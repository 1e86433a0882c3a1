"""Folding scikit-learn linear pipelines: exact where folded, refused where not."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from container.predictors.linear_fold import fold_linear_pipeline

FEATURES = ["a", "b", "c", "d"]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    values = (rng.standard_normal((3_000, 4)) * [1, 10, 0.1, 1000] + [0, 5, -2, 1e4])
    values = values.astype(np.float32)
    labels = (values[:, 0] + values[:, 1] / 10 + rng.standard_normal(3_000) > 0.5).astype(int)
    with_missing = values.copy()
    with_missing[rng.random(values.shape) < 0.05] = np.nan
    return pd.DataFrame(values, columns=FEATURES), pd.DataFrame(with_missing,
                                                                columns=FEATURES), labels


@pytest.mark.parametrize("make", [
    lambda: make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression()),
    lambda: make_pipeline(SimpleImputer(strategy="median"), StandardScaler(with_mean=False),
                          LogisticRegression(C=0.1)),
    lambda: make_pipeline(SimpleImputer(strategy="constant", fill_value=0.0),
                          LogisticRegression(max_iter=500)),
])
def test_foldable_pipelines_match_predict_proba(data, make):
    _, frame, labels = data
    estimator = make().fit(frame, labels)
    folded = fold_linear_pipeline(estimator, FEATURES)
    assert folded is not None
    expected = estimator.predict_proba(frame)[:, 1]
    assert np.max(np.abs(folded.predict_proba(frame.to_numpy()) - expected)) < 1e-6


def test_plain_logistic_regression_fitted_on_arrays(data):
    complete, _, labels = data
    scaled = make_pipeline(StandardScaler(), LogisticRegression()).fit(complete.to_numpy(),
                                                                         labels)
    folded = fold_linear_pipeline(scaled, FEATURES)
    assert folded is not None
    assert all(term.fill is None for term in folded.terms.values())
    expected = scaled.predict_proba(complete.to_numpy())[:, 1]
    assert np.max(np.abs(folded.predict_proba(complete.to_numpy()) - expected)) < 1e-6


def test_unfoldable_shapes_are_left_to_the_estimator(data):
    complete, frame, labels = data
    three_classes = np.digitize(complete["a"], [-0.5, 0.5])
    refused = {
        "indicator": make_pipeline(SimpleImputer(add_indicator=True),
                                   LogisticRegression()).fit(frame, labels),
        "multiclass": make_pipeline(StandardScaler(), LogisticRegression()).fit(
            complete, three_classes),
        "numeric categories": make_pipeline(
            ColumnTransformer([("scaled", StandardScaler(), FEATURES[:3]),
                               ("coded", OneHotEncoder(handle_unknown="ignore"), ["d"])]),
            LogisticRegression()).fit(complete.round(), labels),
        "dropped first category": make_pipeline(
            ColumnTransformer([("scaled", StandardScaler(), FEATURES[:3]),
                               ("coded", OneHotEncoder(drop="first"), ["e"])]),
            LogisticRegression()).fit(with_text(complete), labels),
        "unknown categories are errors": make_pipeline(
            ColumnTransformer([("scaled", StandardScaler(), FEATURES[:3]),
                               ("coded", OneHotEncoder(), ["e"])]),
            LogisticRegression()).fit(with_text(complete), labels),
    }
    for name, estimator in refused.items():
        features = list(estimator.feature_names_in_)
        assert fold_linear_pipeline(estimator, features) is None, name


def with_text(frame: pd.DataFrame, missing: bool = False) -> pd.DataFrame:
    """``frame`` plus a categorical text column ``e`` derived from ``a``."""
    rng = np.random.default_rng(4)
    text = np.where(frame["a"] > 0.5, "high", np.where(frame["a"] < -0.5, "low", "mid"))
    column = pd.Series(text, dtype=object)
    if missing:
        column[rng.random(len(frame)) < 0.05] = None
    return frame.assign(e=column.to_numpy())


def test_column_transformer_with_one_hot_categories_folds_exactly(data):
    """The shape the registry's scikit-learn models are trained with: median imputer
    + scaler on numbers, constant imputer + one-hot on text; scored on rows with
    missing numbers, missing categories and a category unseen in training."""
    import pyarrow as pa

    _, frame, labels = data
    training = with_text(frame, missing=True)
    features = [*FEATURES, "e"]
    estimator = make_pipeline(
        ColumnTransformer([
            ("numeric", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
             FEATURES),
            ("categorical", make_pipeline(
                SimpleImputer(strategy="constant", fill_value="missing"),
                OneHotEncoder(handle_unknown="ignore")), ["e"]),
        ]),
        LogisticRegression(max_iter=1000)).fit(training, labels)
    folded = fold_linear_pipeline(estimator, features)
    assert folded is not None
    scoring = training.copy()
    scoring.loc[scoring.index[:50], "e"] = "never seen"
    table = pa.Table.from_pandas(scoring[features], preserve_index=False)
    expected = estimator.predict_proba(table.to_pandas())[:, 1]
    got = folded.predict(folded.prepare(table, features))
    assert np.max(np.abs(got - expected)) < 1e-6


def test_features_in_another_order_are_not_folded(data):
    complete, _, labels = data
    estimator = make_pipeline(StandardScaler(), LogisticRegression()).fit(complete, labels)
    assert fold_linear_pipeline(estimator, FEATURES[::-1]) is None


def test_many_weak_features_still_fold():
    """120 features of which most barely matter (tiny weights): the fold's check
    must probe at the data's scale. Probing at 3 / weight (an earlier version) fed
    values so large that float32 rounding inside the scikit-learn pipeline summed
    to 1.5e-6 here, and a correct fold was refused."""
    rng = np.random.default_rng(11)
    values = rng.standard_normal((20_000, 120)).astype(np.float32)
    values[rng.random(values.shape) < 0.01] = np.nan
    names = [f"x{i:03d}" for i in range(120)]
    signal = np.nan_to_num(values[:, :8]).sum(axis=1)
    labels = (rng.random(20_000) < 1 / (1 + np.exp(-signal))).astype(int)
    frame = pd.DataFrame(values, columns=names)
    estimator = make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression())
    estimator.fit(frame, labels)
    folded = fold_linear_pipeline(estimator, names)
    assert folded is not None
    expected = estimator.predict_proba(frame)[:, 1]
    assert np.max(np.abs(folded.predict_proba(values) - expected)) < 1e-6
