"""What every framework module gives the engine: a loaded model that scores batches,
and the facts the model itself knows (for checks when an artifact is imported).

Shapes of ``predict`` by task (``container.contract.TASKS``):

* ``binary``: shape (n,), the probability of the positive class;
* ``regression``: shape (n,), the predicted value;
* ``multiclass``: shape (n, k), one probability per class, in the order of
  ``ModelFacts.class_labels`` (and of ``ModelMetadata.class_labels``).

A framework module (``container/frameworks/<name>.py``) defines
``load(metadata, bundle_dir, threads, predictor) -> FrameworkModel`` and keeps its
heavy imports inside functions, so importing the package costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pyarrow as pa


@dataclass(frozen=True)
class ModelFacts:
    """What an artifact says about itself; ``None`` where the format does not record it."""

    feature_names: list[str] | None
    n_features: int | None
    task: str | None
    class_labels: list[str] | None = None
    n_classes: int | None = None  # where the format records a count but no labels (XGBoost)


@dataclass(frozen=True)
class PathsUsed:
    """Which predictor path scored which rows of one call: ``main`` scored every row
    but those in ``others`` (path -> sorted positions it scored instead, e.g. the rows
    near a split threshold that LightGBM rescored after oneDAL), so a row count per
    path is exact for any slice of the call's rows (the parts of a packed unit)."""

    main: str
    others: dict[str, np.ndarray] = field(default_factory=dict)

    def counts(self, start: int, stop: int) -> dict[str, int]:
        """Rows in ``[start, stop)`` per path (paths with none left out)."""
        counts = {}
        for path, positions in self.others.items():
            inside = int(np.searchsorted(positions, stop) - np.searchsorted(positions, start))
            if inside:
                counts[path] = inside
        rest = stop - start - sum(counts.values())
        return ({self.main: rest} if rest else {}) | counts


class FrameworkModel(Protocol):
    """A loaded model. ``predict`` is ``predict_prepared(prepare(batch))``; the two
    halves are separate so a benchmark can time the model alone on prepared data."""

    predictor_name: str  # what scores the rows, for logs
    # the float type its predictors compute in: integer features beyond its exact
    # range are refused, not rounded (container.model_inputs)
    feature_precision: type

    def facts(self) -> ModelFacts: ...

    def prepare(self, batch: pa.RecordBatch) -> Any: ...

    def predict_prepared(self, features: Any) -> np.ndarray: ...

    def predict(self, batch: pa.RecordBatch) -> np.ndarray: ...

    def predict_recorded(self, batch: pa.RecordBatch) -> tuple[np.ndarray, PathsUsed]:
        """``predict``, and which predictor path scored which rows (the manifests'
        record: a model may score some rows on a fast path, some with its framework)."""
        ...

    def verify_fast_path(self, batch: pa.RecordBatch) -> str:
        """Score ``batch`` with the fast predictor and the framework's own; keep the
        fast one only if they agree within the framework's tolerance. Returns what
        was found, for the log."""
        ...
