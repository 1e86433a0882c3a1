"""Test helpers that read what the pipeline wrote (never stand in for pipeline code)."""

from __future__ import annotations

import signal
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest


def read_outputs(prediction_dir: Path) -> pa.Table:
    files = sorted(p for p in prediction_dir.glob("*.parquet"))
    return pa.concat_tables([pq.read_table(p) for p in files])


def framework_predictions(bundle_dir: Path, frame) -> np.ndarray:
    """The framework's own predict_proba[:, 1] on ``frame`` (the reference)."""
    from benchmarks.models import load_framework_model

    model, metadata = load_framework_model(bundle_dir)
    return model.predict_proba(frame[metadata["features"]])[:, 1]


def corrupt_data_page(path: Path, row_group: int = 0, column: int = 1) -> None:
    """Overwrite bytes inside one column chunk's data page (the footer stays valid)."""
    metadata = pq.ParquetFile(path).metadata
    chunk = metadata.row_group(row_group).column(column)
    offset = chunk.data_page_offset + chunk.total_compressed_size // 2
    with open(path, "r+b") as handle:
        handle.seek(offset)
        handle.write(bytes(range(7, 71)))


@contextmanager
def interrupted_after(seconds: float):
    """Raise KeyboardInterrupt in the main thread after ``seconds``, as Ctrl-C (or
    Dagster's run termination) would; the body must expect it."""

    def interrupt(_signum, _frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        with pytest.raises(KeyboardInterrupt):
            yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
