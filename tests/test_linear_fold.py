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

from container.linear_fold import fold_linear_pipeline

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
    assert folded is not None and folded.fill is None
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
        "column transformer": make_pipeline(
            ColumnTransformer([("scaled", StandardScaler(), FEATURES[:3]),
                               ("coded", OneHotEncoder(), ["d"])]),
            LogisticRegression()).fit(complete.round(), labels),
    }
    for name, estimator in refused.items():
        assert fold_linear_pipeline(estimator, FEATURES) is None, name


def test_features_in_another_order_are_not_folded(data):
    complete, _, labels = data
    estimator = make_pipeline(StandardScaler(), LogisticRegression()).fit(complete, labels)
    assert fold_linear_pipeline(estimator, FEATURES[::-1]) is None
