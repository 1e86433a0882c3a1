"""The framework's own predictor, and optionally a faster one used only while it agrees.

Every framework module can build on ``TwoPathModel``: it supplies the framework's
``_framework_prepare``/``_framework_predict`` and, where one exists, a fast predictor
(oneDAL trees, a folded linear map, a compiled graph). The fast one scores only after
it matched the framework on real rows: at training (a stored fold bound to the
artifact's digest) or on the job's first batch, where a disagreement switches the
model back to the framework for the whole job.

Agreement is ``|fast - framework| <= agreement_tolerance * max(1, |framework|)`` on
every value (NaN only where both are NaN): for probabilities that is an absolute
1e-6 by default; for a regression value above 1 the bound grows with it, because
float32 models (XGBoost sums its trees in float32) carry only about seven
significant digits, so two exact evaluations in another order differ by a unit in
the last place (1.2e-6 at 10) without either being wrong. A module whose fast path
is looser (say, float32 graph compilers) sets its own ``agreement_tolerance``.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from container.contract import ModelMetadata
from container.frameworks.base import ModelFacts

log = logging.getLogger("container.frameworks")

AGREEMENT_TOLERANCE = 1e-6


class FastPredictor(Protocol):
    """A faster way to score a model (oneDAL trees, a folded linear map)."""

    def prepare(self, batch: pa.RecordBatch, features: list[str]) -> Any: ...

    def predict(self, features: Any) -> np.ndarray: ...


def largest_difference(fast: np.ndarray, reference: np.ndarray) -> float:
    """Largest ``|fast - reference| / max(1, |reference|)``; NaN where only one of the
    two is NaN, and infinite when the shapes differ (the two disagree outright)."""
    fast = np.asarray(fast, np.float64)
    reference = np.asarray(reference, np.float64)
    if fast.shape != reference.shape:
        return float("inf")
    scaled = np.abs(fast - reference) / np.maximum(1.0, np.abs(reference))
    both_nan = np.isnan(fast) & np.isnan(reference)
    return float(np.max(np.where(both_nan, 0.0, scaled), initial=0.0))


class TwoPathModel:
    """A framework predictor, and optionally a faster one proven to agree with it.

    Subclasses set ``metadata``, ``framework_name``, ``fast_name`` and ``_fast`` (or
    leave it ``None``), and implement the framework path and ``facts``.
    """

    metadata: ModelMetadata
    framework_name: str
    fast_name: str = "none"
    agreement_tolerance: float = AGREEMENT_TOLERANCE
    _fast: FastPredictor | None = None
    _fast_verified_in_training = False  # e.g. a stored fold bound to this exact artifact

    @property
    def predictor_name(self) -> str:
        return self.fast_name if self._fast is not None else self.framework_name

    def facts(self) -> ModelFacts:
        raise NotImplementedError

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
        worst = largest_difference(fast, reference)
        if np.isnan(worst) or worst > self.agreement_tolerance:
            log.warning("%s disagrees with %s by %s on the first batch (tolerance %s): "
                        "using %s", self.fast_name, self.framework_name, worst,
                        self.agreement_tolerance, self.framework_name)
            self._fast = None
        return f"max difference from the framework on the first batch {worst:.1e}"
