"""One small interface over model frameworks: load, feature names, predict a batch.

Adding a framework means adding one adapter class here; the inference engine and
the orchestration code do not change.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import pyarrow as pa

from container.errors import JobInputError
from container.model_bundle import ModelMetadata


class ModelAdapter(Protocol):
    metadata: ModelMetadata

    def predict(self, batch: pa.RecordBatch) -> np.ndarray:
        """Score one record batch; returns one float per row (probability of class 1
        for classifiers)."""
        ...


def feature_matrix(batch: pa.RecordBatch, features: list[str]) -> np.ndarray:
    """Dense float32 matrix in the model's feature order; nulls become NaN."""
    columns = [
        batch.column(name).cast(pa.float32()).to_numpy(zero_copy_only=False)
        for name in features
    ]
    return np.column_stack(columns) if columns else np.empty((batch.num_rows, 0), np.float32)


class XGBoostAdapter:
    """XGBoost Booster scored with ``inplace_predict`` (thread-safe, releases the GIL)."""

    def __init__(self, metadata: ModelMetadata, bundle_dir: Path, threads: int) -> None:
        import xgboost as xgb

        self.metadata = metadata
        self.booster = xgb.Booster()
        try:
            self.booster.load_model(str(bundle_dir / metadata.artifact))
        except xgb.core.XGBoostError as exc:
            raise JobInputError(
                f"model artifact {bundle_dir / metadata.artifact} is not a readable XGBoost "
                f"model: {exc}"
            ) from exc
        self.booster.set_param({"nthread": threads})

    def predict(self, batch: pa.RecordBatch) -> np.ndarray:
        matrix = feature_matrix(batch, self.metadata.features)
        return np.asarray(self.booster.inplace_predict(matrix, missing=np.nan))


class SklearnAdapter:
    """A fitted scikit-learn estimator or pipeline stored with joblib.

    It receives a pandas DataFrame with the declared feature columns, so pipelines
    with column transformers (one-hot encoding, imputation) work unchanged.
    """

    def __init__(self, metadata: ModelMetadata, bundle_dir: Path, threads: int) -> None:
        import joblib

        self.metadata = metadata
        try:
            self.estimator = joblib.load(bundle_dir / metadata.artifact)
        except Exception as exc:  # joblib raises many types for a bad pickle
            raise JobInputError(
                f"model artifact {bundle_dir / metadata.artifact} is not a readable "
                f"scikit-learn model: {type(exc).__name__}: {exc}"
            ) from exc
        self._proba = hasattr(self.estimator, "predict_proba")

    def predict(self, batch: pa.RecordBatch) -> np.ndarray:
        frame = batch.select(self.metadata.features).to_pandas()
        if self._proba:
            return np.asarray(self.estimator.predict_proba(frame)[:, 1])
        return np.asarray(self.estimator.predict(frame), dtype=np.float64)


def load_adapter(metadata: ModelMetadata, bundle_dir: Path, threads: int = 1) -> ModelAdapter:
    """Load the bundle's artifact with the adapter of its framework."""
    if metadata.framework == "xgboost":
        return XGBoostAdapter(metadata, bundle_dir, threads)
    if metadata.framework == "sklearn":
        return SklearnAdapter(metadata, bundle_dir, threads)
    raise JobInputError(f"no adapter for framework {metadata.framework!r}")
