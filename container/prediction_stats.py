"""Summary statistics of a file's predictions, accumulated batch by batch, per task.

They go into the file's manifest (``container.contract.PredictionSummary``), so the
validity and drift checks read a few bytes per file instead of every prediction
again:

* binary: count, NaN, min/max/sum, predictions outside [0, 1], a histogram of
  HISTOGRAM_BINS equal bins over [0, 1];
* regression: the same without the [0, 1] rule, and a histogram over the model's
  ``prediction_bin_edges`` (holdout deciles, outer bins open-ended), so each bin held
  about a tenth of the holdout and drift is measured where the values lie;
* multiclass: rows (NaN if any probability is), min/max/sum and the [0, 1] rule over
  every probability, each class's probability histogram, the rows predicted as each
  class, and a histogram of the predicted class's probability.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa

from container.contract import (
    HISTOGRAM_BINS,
    PREDICTION_COLUMN,
    ModelMetadata,
    PredictionSummary,
    probability_column,
)


def unit_histogram(values: np.ndarray, all_inside: bool = False) -> tuple[np.ndarray, int]:
    """HISTOGRAM_BINS counts over [0, 1] of the values inside it, and how many are not.
    ``all_inside``: the caller knows every value is in [0, 1] (from their minimum and
    maximum), so no mask is built: the common case, paid per batch and per model."""
    if all_inside:
        inside, outside = values, 0
    else:
        mask = (values >= 0) & (values <= 1)
        inside, outside = values[mask], int(len(values) - np.count_nonzero(mask))
    bins = np.minimum((inside * HISTOGRAM_BINS).astype(np.int64), HISTOGRAM_BINS - 1)
    return np.bincount(bins, minlength=HISTOGRAM_BINS), outside


class PredictionStats:
    def __init__(self, task: str = "binary", class_labels: list[str] | None = None,
                 bin_edges: list[float] | None = None) -> None:
        self.task = task
        self.class_labels = list(class_labels or [])
        self.bin_edges = [float(edge) for edge in bin_edges or []]
        self.count = 0
        self.nan_count = 0
        self.total = 0.0
        self.minimum = math.inf
        self.maximum = -math.inf
        self.outside_unit_interval = 0
        bins = len(self.bin_edges) + 1 if task == "regression" else HISTOGRAM_BINS
        self.histogram = np.zeros(bins, dtype=np.int64)
        self.label_counts = np.zeros(len(self.class_labels), dtype=np.int64)
        self.class_histograms = np.zeros((len(self.class_labels), HISTOGRAM_BINS), np.int64)

    @classmethod
    def for_model(cls, metadata: ModelMetadata) -> PredictionStats:
        return cls(metadata.task, metadata.class_labels, metadata.prediction_bin_edges)

    def add_table(self, table: pa.Table | pa.RecordBatch) -> None:
        """Add an output table's predictions (its prediction columns, by contract name)."""
        if self.task == "multiclass":
            columns = [table.column(probability_column(label)).to_numpy()
                       for label in self.class_labels]
            self.add(np.column_stack(columns) if columns else np.empty((0, 0)))
        else:
            self.add(table.column(PREDICTION_COLUMN).to_numpy())

    def add(self, predictions: np.ndarray) -> None:
        """Add a batch: shape (n,), or (n, classes) for multiclass."""
        values = np.asarray(predictions, dtype=np.float64)
        if self.task == "multiclass":
            rows_with_nan = np.isnan(values).any(axis=1) if values.size else np.zeros(0, bool)
            self.count += len(values)
            self.nan_count += int(rows_with_nan.sum())
            self._add_multiclass(values[~rows_with_nan])
            return
        missing = np.isnan(values)
        finite = values[~missing] if missing.any() else values
        self.count += len(values)
        self.nan_count += len(values) - len(finite)
        low, high = self._add_range(finite)
        if self.task == "regression":
            positions = np.searchsorted(np.asarray(self.bin_edges), finite, side="right")
            self.histogram += np.bincount(positions, minlength=len(self.histogram))
        else:
            counts, outside = unit_histogram(finite, all_inside=low >= 0 and high <= 1)
            self.histogram += counts
            self.outside_unit_interval += outside

    def _add_range(self, finite: np.ndarray) -> tuple[float, float]:
        """Add to the sum, minimum and maximum; returns the batch's (min, max), or
        (inf, -inf) for an empty one."""
        if not finite.size:
            return math.inf, -math.inf
        self.total += float(finite.sum())
        low, high = float(finite.min()), float(finite.max())
        self.minimum = min(self.minimum, low)
        self.maximum = max(self.maximum, high)
        return low, high

    def _add_multiclass(self, rows: np.ndarray) -> None:
        self._add_range(rows)
        if not len(rows):
            return
        for index in range(rows.shape[1]):
            counts, outside = unit_histogram(rows[:, index])
            self.class_histograms[index] += counts
            self.outside_unit_interval += outside
        predicted = np.argmax(rows, axis=1)
        self.label_counts += np.bincount(predicted, minlength=rows.shape[1])
        top, _ = unit_histogram(rows[np.arange(len(rows)), predicted])
        self.histogram += top

    def summary(self) -> PredictionSummary:
        numbers = self.minimum <= self.maximum
        return PredictionSummary(
            count=self.count,
            nan_count=self.nan_count,
            min=self.minimum if numbers else None,
            max=self.maximum if numbers else None,
            sum=self.total,
            outside_unit_interval=self.outside_unit_interval,
            histogram=self.histogram.tolist(),
            task=self.task,
            bin_edges=list(self.bin_edges),
            label_counts=dict(zip(self.class_labels, self.label_counts.tolist(),
                                  strict=True)),
            class_histograms={label: counts.tolist() for label, counts
                              in zip(self.class_labels, self.class_histograms, strict=True)},
        )

    def as_dict(self) -> dict:
        return self.summary().to_dict()
