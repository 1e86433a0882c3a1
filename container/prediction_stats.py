"""Summary statistics of a file's predictions, accumulated batch by batch.

They go into the file's manifest, so the validity and drift checks read a few
bytes per file instead of every prediction again.
"""

from __future__ import annotations

import math

import numpy as np

from container.contract import HISTOGRAM_BINS, PredictionSummary


class PredictionStats:
    def __init__(self) -> None:
        self.count = 0
        self.nan_count = 0
        self.total = 0.0
        self.minimum = math.inf
        self.maximum = -math.inf
        self.histogram = np.zeros(HISTOGRAM_BINS, dtype=np.int64)
        self.outside_unit_interval = 0

    def add(self, predictions: np.ndarray) -> None:
        values = np.asarray(predictions, dtype=np.float64)
        finite = values[~np.isnan(values)]
        self.count += len(values)
        self.nan_count += len(values) - len(finite)
        if len(finite):
            self.total += float(finite.sum())
            self.minimum = min(self.minimum, float(finite.min()))
            self.maximum = max(self.maximum, float(finite.max()))
            inside = (finite >= 0) & (finite <= 1)
            self.outside_unit_interval += int((~inside).sum())
            bins = np.minimum((finite[inside] * HISTOGRAM_BINS).astype(np.int64),
                              HISTOGRAM_BINS - 1)
            self.histogram += np.bincount(bins, minlength=HISTOGRAM_BINS)

    def summary(self) -> PredictionSummary:
        finite = self.count - self.nan_count
        return PredictionSummary(
            count=self.count,
            nan_count=self.nan_count,
            min=self.minimum if finite else None,
            max=self.maximum if finite else None,
            sum=self.total,
            outside_unit_interval=self.outside_unit_interval,
            histogram=self.histogram.tolist(),
        )

    def as_dict(self) -> dict:
        return self.summary().to_dict()
