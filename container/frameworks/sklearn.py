"""A fitted scikit-learn estimator or pipeline stored with joblib.

The framework path gives it a pandas DataFrame with the declared feature columns,
so pipelines with column transformers (one-hot encoding, imputation) work
unchanged: ``predict_proba`` for classifiers (binary: the probability of
``classes_[1]``; multiclass: one column per class, in ``ModelMetadata.class_labels``
order), ``predict`` for regressors.

Binary logistic pipelines that fold into one affine map (``container.predictors.linear_fold``)
are scored as that map, column by column in float64 (no row-major copy, no rounding
of float64 inputs); a fold stored by training for exactly this artifact is used
without loading scikit-learn at all (about 2 s of every job's start-up).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from container.contract import FOLD_FILE, ModelMetadata
from container.errors import JobInputError
from container.predictors.base import ModelFacts
from container.predictors.declared import check_declared
from container.predictors.linear_fold import fold_linear_pipeline, load_fold
from container.predictors.two_path import TwoPathModel


def estimator_facts(estimator: Any) -> ModelFacts:
    """What a fitted estimator records: ``feature_names_in_``, ``n_features_in_``, and
    its kind (a classifier's task follows from how many ``classes_`` it has)."""
    from sklearn.base import is_classifier, is_regressor

    names = getattr(estimator, "feature_names_in_", None)
    count = getattr(estimator, "n_features_in_", None)
    task, labels = None, None
    if is_classifier(estimator):
        labels = [str(label) for label in estimator.classes_]
        task = "binary" if len(labels) == 2 else "multiclass"
    elif is_regressor(estimator):
        task = "regression"
    return ModelFacts(
        feature_names=[str(name) for name in names] if names is not None else None,
        n_features=int(count) if count is not None else None,
        task=task,
        class_labels=labels,
    )


class SklearnModel(TwoPathModel):
    fast_name = "folded linear map"
    feature_precision = np.float64  # scikit-learn computes in float64

    def __init__(self, metadata: ModelMetadata, bundle_dir: Path, threads: int,
                 predictor: str) -> None:
        self.metadata = metadata
        self.artifact = bundle_dir / metadata.artifact
        self.framework_name = ("scikit-learn predict" if metadata.task == "regression"
                               else "scikit-learn predict_proba")
        self._estimator: Any = None
        self._class_order: list[int] | None = None
        if predictor == "framework":
            self.estimator  # noqa: B018  # load now: a bad artifact fails the job here
            return
        if metadata.task == "binary":
            self._fast = load_fold(bundle_dir / FOLD_FILE, self.artifact)
            self._fast_verified_in_training = self._fast is not None
        if self._fast is None:
            # only binary logistic pipelines fold; anything else returns None
            self._fast = fold_linear_pipeline(self.estimator, metadata.features)

    @property
    def estimator(self) -> Any:
        """The unpickled estimator, loaded (and checked against the metadata) on first
        use: a stored fold needs none."""
        if self._estimator is None:
            import joblib

            try:
                estimator = joblib.load(self.artifact)
            except Exception as exc:  # joblib raises many types for a bad pickle
                raise JobInputError(
                    f"model artifact {self.artifact} is not a readable scikit-learn "
                    f"model: {type(exc).__name__}: {exc}"
                ) from exc
            if not callable(getattr(estimator, "predict", None)):  # read, but no model
                raise JobInputError(
                    f"model artifact {self.artifact} holds a {type(estimator).__name__}, "
                    "not a scikit-learn estimator or pipeline (it has no predict method): "
                    "deliver the fitted model itself, saved with joblib.dump(model, path), "
                    "not a dict or list around it")
            facts = estimator_facts(estimator)
            check_declared(self.metadata, facts, f"{type(estimator).__name__} in "
                                                 f"{self.artifact.name}")
            self._class_order = self._order_of_classes(facts)
            self._estimator = estimator
        return self._estimator

    def _order_of_classes(self, facts: ModelFacts) -> list[int] | None:
        """Columns of ``predict_proba`` in the metadata's class order (multiclass)."""
        if self.metadata.task != "multiclass" or not facts.class_labels:
            return None
        if sorted(facts.class_labels) != sorted(self.metadata.class_labels):
            raise JobInputError(
                f"model {self.metadata.name!r}: its estimator's classes "
                f"{facts.class_labels} are not the class labels model.json declares "
                f"{self.metadata.class_labels}; retrain or re-import the model")
        return [facts.class_labels.index(label) for label in self.metadata.class_labels]

    def facts(self) -> ModelFacts:
        return estimator_facts(self.estimator)

    def _framework_prepare(self, batch: pa.RecordBatch) -> Any:
        return batch.select(self.metadata.features).to_pandas()

    def _framework_predict(self, features: Any) -> np.ndarray:
        estimator = self.estimator
        if self.metadata.task == "regression" or not hasattr(estimator, "predict_proba"):
            return np.asarray(estimator.predict(features), dtype=np.float64)
        probabilities = np.asarray(estimator.predict_proba(features), dtype=np.float64)
        if self._class_order is not None:
            return probabilities[:, self._class_order]
        # binary: class 1's probability; any other width is left whole, so the engine
        # reports the model's shape instead of scoring the wrong column
        return probabilities[:, 1] if probabilities.shape[1] == 2 else probabilities


def load(metadata: ModelMetadata, bundle_dir: Path, threads: int,
         predictor: str) -> SklearnModel:
    return SklearnModel(metadata, bundle_dir, threads, predictor)
