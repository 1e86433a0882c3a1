"""A record batch's features as the predictors take them: dense matrices or columns.

The batch has been prepared already (``container.model_inputs``: types checked,
missing values handled by the model's policy), so these only lay the values out.
Most predictors take a float32 row-major matrix (``feature_matrix``). LightGBM
compares features with its split thresholds in float64, and an ONNX graph may
declare a float64 input: rounding a float64 column to float32 first would move
values that lie within float32's rounding of a threshold to the other side, so those
get the column's own precision (``float64_matrix``, ``feature_columns``).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def feature_columns(batch: pa.RecordBatch, features: list[str], dtype: type) -> list[np.ndarray]:
    """Each feature as a contiguous array of ``dtype``; nulls become NaN."""
    arrow_type = pa.float64() if dtype is np.float64 else pa.float32()
    return [batch.column(name).cast(arrow_type).to_numpy(zero_copy_only=False)
            for name in features]


def _matrix(batch: pa.RecordBatch, features: list[str], dtype: type) -> np.ndarray:
    columns = feature_columns(batch, features, dtype)
    return np.column_stack(columns) if columns else np.empty((batch.num_rows, 0), dtype)


def feature_matrix(batch: pa.RecordBatch, features: list[str]) -> np.ndarray:
    """Dense float32 row-major matrix in the model's feature order; nulls become NaN."""
    return _matrix(batch, features, np.float32)


def float64_matrix(batch: pa.RecordBatch, features: list[str]) -> np.ndarray:
    """Dense float64 row-major matrix in the model's feature order; nulls become NaN."""
    return _matrix(batch, features, np.float64)
