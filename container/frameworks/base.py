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

from dataclasses import dataclass
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


class FrameworkModel(Protocol):
    """A loaded model. ``predict`` is ``predict_prepared(prepare(batch))``; the two
    halves are separate so a benchmark can time the model alone on prepared data."""

    predictor_name: str  # what scores the rows, for logs and manifests

    def facts(self) -> ModelFacts: ...

    def prepare(self, batch: pa.RecordBatch) -> Any: ...

    def predict_prepared(self, features: Any) -> np.ndarray: ...

    def predict(self, batch: pa.RecordBatch) -> np.ndarray: ...

    def verify_fast_path(self, batch: pa.RecordBatch) -> str:
        """Score ``batch`` with the fast predictor and the framework's own; keep the
        fast one only if they agree within the framework's tolerance. Returns what
        was found, for the log."""
        ...
