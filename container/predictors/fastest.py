"""Two predictors that agree, and for each batch size the faster of the two.

For trees the fast path (oneDAL) is faster at every batch size, so
``container.predictors.two_path.TwoPathModel`` keeps it whenever it agrees. For
neural networks the alternative to the framework (ONNX Runtime on an exported graph)
is not reliably faster: ``benchmarks/dl_probe.py`` measured, on 1M rows and 2 cores
with a 40-256-256-1 MLP, torch eager 1.1 s at batch 4,096 and 2.3 s at batch 65,536,
ONNX Runtime 1.3-1.4 s; which one wins depends on the model, the batch size and the
machine. So ``RacedTwoPathModel`` first checks that the two agree on the job's first
batch (as ``TwoPathModel`` does) and then times both on that batch at two sizes, the
sample's own (the first 4,096 rows: the size of a small batch or a row group's tail)
and ``DEFAULT_BATCH_ROWS`` (the sample repeated), and uses for each batch the path
that was faster at the nearer of the two sizes (nearer on a log scale). The fast path
must win by ``MARGIN`` to be used: on a tie the framework, the reference, scores.

Agreement for float32 graphs is ``GRAPH_TOLERANCE`` = 1e-5 (scaled by the value above
1, see ``container.predictors.two_path.largest_difference``), not the 1e-6 of trees:
a network sums hundreds of float32 products per unit and layer, and two correct
kernels (MKL/oneDNN under torch and TensorFlow, MLAS under ONNX Runtime) sum them in
different orders, so they differ by a few float32 units in the last place times the
depth. Measured here: 6e-8 to 1.8e-7 on small MLPs (6-32-k) and up to about 1e-6 on
the probe's 256-wide layers; 1e-5 leaves ten times that, and a graph that computes
something else (a mis-exported op, NaN handled differently, a random op) is off by
far more than 1e-5 on some row and is dropped.

Either path is called with at most ``NETWORK_CALL_ROWS`` rows at a time
(``container.predictors.network_calls``: networks are fastest in 1k-4k-row calls),
in the race as in scoring, so a batch of ``DEFAULT_BATCH_ROWS`` is timed as it is
scored. Bundles imported since the ONNX export moved to import carry the export and
the race's verdict (``container.predictors.verified_export``) and are not raced here.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa

from container.contract import DEFAULT_BATCH_ROWS
from container.predictors.network_calls import in_calls
from container.predictors.two_path import TwoPathModel

log = logging.getLogger("container.frameworks")

GRAPH_TOLERANCE = 1e-5
MARGIN = 0.95  # the fast path must take at most 95% of the framework's time
TIMED_RUNS = 3  # per path and size, best counts
TIME_BUDGET_SECONDS = 1.0  # per path and size: big models get fewer runs


def best_seconds(predict: Callable[[Any], Any], features: Any, runs: int = TIMED_RUNS,
                 budget: float = TIME_BUDGET_SECONDS) -> float:
    """The fastest of up to ``runs`` timed calls after an untimed one (which pays for
    allocation at a new shape, graph building, thread start-up)."""
    predict(features)
    best, spent = math.inf, 0.0
    for _ in range(runs):
        started = time.perf_counter()
        predict(features)
        elapsed = time.perf_counter() - started
        best, spent = min(best, elapsed), spent + elapsed
        if spent > budget:
            break
    return best


def repeated_rows(features: np.ndarray, rows: int) -> np.ndarray:
    """``features`` (a row-major matrix) repeated down to ``rows`` rows."""
    return np.ascontiguousarray(features[np.arange(rows) % len(features)])


class RacedTwoPathModel(TwoPathModel):
    """A ``TwoPathModel`` whose fast path is used only for the batch sizes at which it
    was measured faster than the framework.

    Both paths must take the same prepared features (a float32 matrix): the batch is
    prepared once by ``_framework_prepare`` and the size decides which one scores it.
    """

    agreement_tolerance = GRAPH_TOLERANCE
    fast_refusal: str | None = None  # why there is no fast path, for the log
    # rows of a batch (inclusive bounds) for which the fast path scores
    _fast_rows: tuple[int, float] = (0, math.inf)
    timings: dict[int, tuple[float, float]]  # rows -> (framework s, fast s), once raced

    @property
    def predictor_name(self) -> str:
        if self._fast is None:
            return self.framework_name
        low, high = self._fast_rows
        if low <= 1 and high == math.inf:
            return self.fast_name
        if low <= 1:
            return (f"{self.fast_name} for batches up to {int(high):,} rows, "
                    f"{self.framework_name} above")
        return (f"{self.framework_name} for batches up to {low - 1:,} rows, "
                f"{self.fast_name} above")

    def scored_by(self, rows: int) -> str:
        return self.fast_name if self.uses_fast_path(rows) else self.framework_name

    def uses_fast_path(self, rows: int) -> bool:
        """Whether a batch of ``rows`` rows is scored by the fast path."""
        low, high = self._fast_rows
        return self._fast is not None and low <= rows <= high

    def prepare(self, batch: pa.RecordBatch) -> Any:
        return self._framework_prepare(batch)

    def predict_prepared(self, features: Any) -> np.ndarray:
        if self._fast is not None and self.uses_fast_path(len(features)):
            return in_calls(self._fast.predict, features)
        return in_calls(self._framework_predict, features)

    def verify_fast_path(self, batch: pa.RecordBatch) -> str:
        if self._fast is None:
            return self.fast_refusal or "no faster predictor for this model"
        agreement = super().verify_fast_path(batch)
        if self._fast is None or batch.num_rows == 0:
            return agreement
        return f"{agreement}; {self._race(self._framework_prepare(batch))}"

    @staticmethod
    def _called_in_calls(predict: Callable[[Any], np.ndarray]) -> Callable[[Any], np.ndarray]:
        return lambda features: in_calls(predict, features)

    def _race(self, sample: np.ndarray) -> str:
        """Time both paths at the sample's size and at DEFAULT_BATCH_ROWS, keep the fast
        path for the sizes where it won; returns the measurements, for the log."""
        assert self._fast is not None
        sizes = sorted({len(sample), max(len(sample), DEFAULT_BATCH_ROWS)})
        self.timings = {}
        for rows in sizes:
            features = sample if rows == len(sample) else repeated_rows(sample, rows)
            framework = best_seconds(self._called_in_calls(self._framework_predict),
                                     features)
            fast = best_seconds(self._called_in_calls(self._fast.predict), features)
            self.timings[rows] = (framework, fast)
        wins = [self.timings[rows][1] < MARGIN * self.timings[rows][0] for rows in sizes]
        boundary = int(math.sqrt(sizes[0] * sizes[-1]))  # nearer on a log scale
        if all(wins):
            self._fast_rows = (0, math.inf)
        elif not any(wins):
            self._fast = None
        elif wins[0]:
            self._fast_rows = (0, boundary)
        else:
            self._fast_rows = (boundary + 1, math.inf)
        measured = ", ".join(
            f"{rows:,} rows: {self.framework_name} {framework * 1e3:.1f} ms, "
            f"{self.fast_name} {fast * 1e3:.1f} ms"
            for rows, (framework, fast) in self.timings.items())
        log.info("timed on the first batch: %s; scoring with %s", measured,
                 self.predictor_name)
        return f"timed {measured}"
