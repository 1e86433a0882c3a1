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
import pyarrow.compute as pc

from container.contract import ModelMetadata
from container.predictors.base import ModelFacts, PathsUsed

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


MISSING_SHARE = 0.05  # of a verification sample's feature values made missing


def with_missing_values(batch: pa.RecordBatch, features: list[str]) -> pa.RecordBatch:
    """A copy of ``batch`` with a deterministic ``MISSING_SHARE`` of each feature's
    values, and one value of every other row, null: where a fast path is checked on
    missing values against the framework."""
    generator = np.random.default_rng(0)
    rows = batch.num_rows
    forced = np.zeros((rows, len(features)), dtype=bool)
    every_other = np.arange(0, rows, 2)
    if len(features):
        forced[every_other, generator.integers(0, len(features), len(every_other))] = True
    columns = dict(zip(batch.schema.names, batch.columns, strict=True))
    for index, name in enumerate(features):
        missing = (generator.random(rows) < MISSING_SHARE) | forced[:, index]
        column = columns[name]
        columns[name] = pc.if_else(pa.array(missing), pa.nulls(rows, column.type), column)
    return pa.RecordBatch.from_arrays(list(columns.values()), names=batch.schema.names)


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
    feature_precision: type = np.float32

    @property
    def predictor_name(self) -> str:
        return self.fast_name if self._fast is not None else self.framework_name

    def scored_by(self, rows: int) -> str:
        """Which path scores a batch of ``rows`` rows."""
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

    def predict_recorded(self, batch: pa.RecordBatch) -> tuple[np.ndarray, PathsUsed]:
        return self.predict(batch), PathsUsed(self.scored_by(batch.num_rows))

    def verify_fast_path(self, batch: pa.RecordBatch) -> str:
        """Both paths on ``batch`` and, for a model that takes missing values natively,
        on a copy of it with missing values (``with_missing_values``): a fast path is
        kept only if it agrees on both, so a later batch with a gap is scored alike."""
        if self._fast is None:
            return "no faster predictor for this model"
        if self._fast_verified_in_training:
            return "checked against the framework when trained"
        samples = {"the first batch": batch}
        if self.metadata.resolved_missing_values == "native":
            samples["it with missing values"] = with_missing_values(batch,
                                                                    self.metadata.features)
        found = []
        for what, sample in samples.items():
            fast = self._fast.predict(self._fast.prepare(sample, self.metadata.features))
            try:
                reference = self._framework_predict(self._framework_prepare(sample))
            except ValueError as exc:  # a framework that takes no NaN (scikit-learn's)
                found.append(f"the framework scores no missing values ({exc})")
                continue
            worst = largest_difference(fast, reference)
            found.append(f"max difference from the framework on {what} {worst:.1e}")
            if np.isnan(worst) or worst > self.agreement_tolerance:
                log.warning("%s disagrees with %s by %s on %s (tolerance %s): using %s",
                            self.fast_name, self.framework_name, worst, what,
                            self.agreement_tolerance, self.framework_name)
                self._fast = None
                break
        return "; ".join(found)
