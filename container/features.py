"""Turning a record batch into what a predictor takes."""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def feature_matrix(batch: pa.RecordBatch, features: list[str]) -> np.ndarray:
    """Dense float32 row-major matrix in the model's feature order; nulls become NaN."""
    columns = [
        batch.column(name).cast(pa.float32()).to_numpy(zero_copy_only=False)
        for name in features
    ]
    return np.column_stack(columns) if columns else np.empty((batch.num_rows, 0), np.float32)
