"""One small interface over model frameworks: load a bundle, predict a batch.

Each adapter has the framework's own predictor and, where one exists, a faster
predictor that must agree with it within 1e-6 (checked when trained or on the
job's first batch). Adding a framework means adding one adapter class here; the
inference engine and the orchestration code do not change.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from container.contract import FOLD_FILE, ONEDAL_CACHE_FILE, PREDICTORS, ModelMetadata
from container.errors import JobInputError
from container.features import feature_matrix
from container.linear_fold import fold_linear_pipeline, load_fold
from container.onedal_trees import onedal_predictor

log = logging.getLogger("container.adapters")

AGREEMENT_TOLERANCE = 1e-6


class ModelAdapter(Protocol):
    """A loaded model. ``predict`` is ``predict_prepared(prepare(batch))``; the two
    halves are separate so a benchmark can time the model alone on prepared data."""

    metadata: ModelMetadata
    predictor_name: str  # what scores the rows, for logs and manifests

    def prepare(self, batch: pa.RecordBatch) -> Any:
        """The batch's features in the form the active predictor takes."""
        ...

    def predict_prepared(self, features: Any) -> np.ndarray:
        """One float per row (probability of class 1 for classifiers)."""
        ...

    def predict(self, batch: pa.RecordBatch) -> np.ndarray:
        ...

    def verify_fast_path(self, batch: pa.RecordBatch) -> str:
        """Score ``batch`` with the fast predictor and the framework's own; keep the
        fast one only if they agree within ``AGREEMENT_TOLERANCE``. Returns what was
        found, for the log."""
        ...


class FastPredictor(Protocol):
    """A faster way to score a model (oneDAL trees, a folded linear map)."""

    def prepare(self, batch: pa.RecordBatch, features: list[str]) -> Any: ...

    def predict(self, features: Any) -> np.ndarray: ...


class _TwoPathAdapter:
    """A framework predictor, and optionally a faster one proven to agree with it."""

    metadata: ModelMetadata
    framework_name: str
    fast_name: str
    _fast: FastPredictor | None = None
    _fast_verified_in_training = False  # stored fold bound to this exact artifact

    @property
    def predictor_name(self) -> str:
        return self.fast_name if self._fast is not None else self.framework_name

    def _framework_prepare(self, batch: pa.RecordBatch) -> Any:
        raise NotImplementedError

    def _framework_predict(self, features: Any) -> np.ndarray:
        raise NotImplementedError

    def prepare(self, batch: pa.RecordBatch) -> Any:
        if self._fast is not None:
            return self._fast.prepare(batch, self.metadata.features)
        return self._framework_prepare(batch)

    def predict_prepared(self, features: Any) -> np.ndarray:
        if self._fast is not None:
            return self._fast.predict(features)
        return self._framework_predict(features)

    def predict(self, batch: pa.RecordBatch) -> np.ndarray:
        return self.predict_prepared(self.prepare(batch))

    def verify_fast_path(self, batch: pa.RecordBatch) -> str:
        if self._fast is None:
            return "no faster predictor for this model"
        if self._fast_verified_in_training:
            return "checked against the framework when trained"
        fast = self._fast.predict(self._fast.prepare(batch, self.metadata.features))
        reference = self._framework_predict(self._framework_prepare(batch))
        difference = np.abs(np.asarray(fast, np.float64) - np.asarray(reference, np.float64))
        both_nan = np.isnan(fast) & np.isnan(reference)
        worst = float(np.max(np.where(both_nan, 0.0, difference), initial=0.0))
        if np.isnan(worst) or worst > AGREEMENT_TOLERANCE:
            log.warning("%s disagrees with %s by %s on the first batch: using %s",
                        self.fast_name, self.framework_name, worst, self.framework_name)
            self._fast = None
        return f"max difference from the framework on the first batch {worst:.1e}"


class XGBoostAdapter(_TwoPathAdapter):
    """An XGBoost Booster: ``inplace_predict`` (thread-safe, releases the GIL), or
    oneDAL where installed and the objective converts (``container.onedal_trees``)."""

    framework_name = "xgboost inplace_predict"
    fast_name = "oneDAL"

    def __init__(self, metadata: ModelMetadata, bundle_dir: Path, threads: int,
                 predictor: str) -> None:
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
        if predictor == "auto":
            self._fast = onedal_predictor(self.booster, bundle_dir / ONEDAL_CACHE_FILE, threads)

    def _framework_prepare(self, batch: pa.RecordBatch) -> np.ndarray:
        return feature_matrix(batch, self.metadata.features)

    def _framework_predict(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster.inplace_predict(features, missing=np.nan))


class SklearnAdapter(_TwoPathAdapter):
    """A fitted scikit-learn estimator or pipeline stored with joblib.

    The framework path gives it a pandas DataFrame with the declared feature
    columns, so pipelines with column transformers (one-hot encoding, imputation)
    work unchanged. Binary logistic pipelines that fold into one affine map
    (``container.linear_fold``) are scored as that map, column by column in float64
    (no row-major copy, no rounding of float64 inputs); a fold stored
    by training for exactly this artifact is used without loading scikit-learn.
    """

    framework_name = "scikit-learn predict_proba"
    fast_name = "folded linear map"

    def __init__(self, metadata: ModelMetadata, bundle_dir: Path, threads: int,
                 predictor: str) -> None:
        self.metadata = metadata
        self.artifact = bundle_dir / metadata.artifact
        self._estimator: Any = None
        if predictor == "framework":
            self.estimator  # noqa: B018  # load now: a bad artifact fails the job here
            return
        self._fast = load_fold(bundle_dir / FOLD_FILE, self.artifact)
        self._fast_verified_in_training = self._fast is not None
        if self._fast is None:
            self._fast = fold_linear_pipeline(self.estimator, metadata.features)

    @property
    def estimator(self) -> Any:
        """The unpickled estimator, loaded on first use (a stored fold needs none)."""
        if self._estimator is None:
            import joblib

            try:
                self._estimator = joblib.load(self.artifact)
            except Exception as exc:  # joblib raises many types for a bad pickle
                raise JobInputError(
                    f"model artifact {self.artifact} is not a readable scikit-learn "
                    f"model: {type(exc).__name__}: {exc}"
                ) from exc
        return self._estimator

    def _framework_prepare(self, batch: pa.RecordBatch) -> Any:
        return batch.select(self.metadata.features).to_pandas()

    def _framework_predict(self, features: Any) -> np.ndarray:
        if hasattr(self.estimator, "predict_proba"):
            return np.asarray(self.estimator.predict_proba(features)[:, 1])
        return np.asarray(self.estimator.predict(features), dtype=np.float64)


def load_adapter(metadata: ModelMetadata, bundle_dir: Path, threads: int = 1,
                 predictor: str = "auto") -> ModelAdapter:
    """Load the bundle's artifact with the adapter of its framework."""
    if predictor not in PREDICTORS:
        raise ValueError(f"predictor must be one of {PREDICTORS}, not {predictor!r}")
    if metadata.framework == "xgboost":
        return XGBoostAdapter(metadata, bundle_dir, threads, predictor)
    if metadata.framework == "sklearn":
        return SklearnAdapter(metadata, bundle_dir, threads, predictor)
    raise JobInputError(f"no adapter for framework {metadata.framework!r}")
