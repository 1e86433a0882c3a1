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
    """The framework's own predictions on ``frame`` (the reference), per task: binary
    ``predict_proba[:, 1]``; multiclass ``predict_proba`` with its columns in the
    bundle's class-label order; regression ``predict``."""
    from benchmarks.models import load_framework_model

    model, metadata = load_framework_model(bundle_dir)
    features = frame[metadata["features"]]
    task = metadata.get("task", "binary")
    if task == "regression":
        return np.asarray(model.predict(features), np.float64)
    probabilities = np.asarray(model.predict_proba(features), np.float64)
    if task == "binary":
        return probabilities[:, 1]
    classes = [str(c) for c in model.classes_]
    if classes != [str(i) for i in range(len(classes))]:  # scikit-learn keeps the names
        return probabilities[:, [classes.index(c) for c in metadata["class_labels"]]]
    return probabilities  # XGBoost: class indices, in class-label order


def worst_difference(actual, expected) -> float:
    """Largest |actual - expected| / max(1, |expected|): an absolute difference for
    probabilities, a relative one for regression values above 1 (the engine's rule for
    fast predictors; a float32 model has about seven significant digits)."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    return float(np.max(np.abs(actual - expected) / np.maximum(1.0, np.abs(expected)),
                        initial=0.0))


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
