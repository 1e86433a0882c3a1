"""What does dictionary encoding cost when writing predictions?

``python -m benchmarks.writers`` writes the same keys + float64 predictions
(W1's size: 4,000,000 rows, probabilities from a real model's range) with
pyarrow's default (dictionary encoding on) and with ``use_dictionary=False``,
as the engine does, and prints seconds, size and their ratio, measured in the
same run (best of three each).
"""

from __future__ import annotations

import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROWS = 4_000_000
REPEATS = 3


def output_table(rows: int) -> pa.Table:
    rng = np.random.default_rng(5)
    probabilities = 1 / (1 + np.exp(-rng.standard_normal(rows) * 2))
    return pa.table({"id": np.arange(rows, dtype=np.int64), "prediction": probabilities})


def best_write(table: pa.Table, **options) -> tuple[float, int]:
    best, size = float("inf"), 0
    for _ in range(REPEATS):
        sink = pa.BufferOutputStream()
        started = time.perf_counter()
        pq.write_table(table, sink, **options)
        best = min(best, time.perf_counter() - started)
        size = sink.getvalue().size
    return best, size


def main() -> None:
    table = output_table(ROWS)
    plain_seconds, plain_size = best_write(table, use_dictionary=False)
    dictionary_seconds, dictionary_size = best_write(table)
    print(f"{'writer':<28} {'seconds':>8} {'MB':>8}")
    print(f"{'use_dictionary=False':<28} {plain_seconds:>8.3f} {plain_size / 1e6:>8.1f}")
    print(f"{'pyarrow default (dictionary)':<28} {dictionary_seconds:>8.3f} "
          f"{dictionary_size / 1e6:>8.1f}")
    print(f"dictionary encoding: {dictionary_seconds / plain_seconds:.2f}x the time, "
          f"{dictionary_size / plain_size:.2f}x the size")


if __name__ == "__main__":
    main()
