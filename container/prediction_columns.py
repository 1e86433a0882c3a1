"""A model's predictions as the output contract's columns, per task.

``predict`` returns shape (n,) for binary and regression models and (n, k) for
multiclass ones (``container.predictors.base``). A model whose output has another
shape for its declared task (a 3-class booster declared binary, a binary model
declared multiclass) is refused here with an error that names the model, the
declared task and what it returned, before its output reaches a writer that would
fail with an error blaming the input file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from container.contract import FLOAT64, STRING, ModelMetadata
from container.errors import JobInputError

if TYPE_CHECKING:
    from container.model_inputs import ModelInputs

_ARROW_TYPES = {FLOAT64: pa.float64(), STRING: pa.string()}


def prediction_fields(metadata: ModelMetadata) -> list[pa.Field]:
    """The prediction columns of this model's outputs, as Arrow fields."""
    return [pa.field(name, _ARROW_TYPES[type_name])
            for name, type_name in metadata.prediction_columns()]


def expected_shape(metadata: ModelMetadata, rows: int) -> tuple[int, ...]:
    if metadata.task == "multiclass":
        return (rows, len(metadata.class_labels))
    return (rows,)


def checked_predictions(predictions: object, metadata: ModelMetadata, rows: int,
                        where: str) -> np.ndarray:
    """``predictions`` as float64 of the task's shape, or a JobInputError naming the
    model and what it returned (``where`` says which rows, for the message)."""
    try:
        values = np.asarray(predictions, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise JobInputError(
            f"model {metadata.name!r} (version {metadata.version}) returned predictions "
            f"that are not numbers for {where} ({type(exc).__name__}: {exc}); the model "
            "is at fault, not the input") from exc
    if values.ndim == 2 and values.shape[1] == 1 and metadata.task != "multiclass":
        values = values[:, 0]  # one output column: the (n,) the task means
    expected = expected_shape(metadata, rows)
    if values.shape != expected:
        raise JobInputError(_wrong_shape(metadata, values.shape, expected, where))
    return values


def _wrong_shape(metadata: ModelMetadata, got: tuple[int, ...],
                 expected: tuple[int, ...], where: str) -> str:
    if metadata.task == "multiclass":
        needs = (f"one probability per class, shape {expected} for its "
                 f"{len(metadata.class_labels)} class labels {metadata.class_labels}")
    elif metadata.task == "binary":
        needs = f"one probability (of class 1) per row, shape {expected}"
    else:
        needs = f"one value per row, shape {expected}"
    looks = ""
    if len(got) == 2 and got[0] == expected[0] and got[1] > 1:
        looks = f" It looks like a {got[1]}-class classifier: declare task = \"multiclass\"."
    elif len(got) == 1 and got[0] == expected[0] and metadata.task == "multiclass":
        looks = " It looks like a binary classifier or a regressor."
    return (f"model {metadata.name!r} (version {metadata.version}) is declared task "
            f"{metadata.task!r}, which needs {needs}, but it returned shape {got} for "
            f"{where}.{looks} The model does not fit its declared task (the input data is "
            "not at fault): fix the task in the registry or the model, and retrain or "
            "re-import it.")


def unscored_rows(values: np.ndarray, metadata: ModelMetadata, where: str,
                  inputs: ModelInputs, features: pa.RecordBatch) -> np.ndarray | None:
    """Rows the model returned no number for (NaN; multiclass: any probability), or
    ``None`` when every row has one. By the model's ``nan_predictions`` policy they
    fail the model here, naming the count (``fail``: nothing of the file is written),
    or are written as nulls (``mark``), so no such row ever looks like a prediction."""
    missing = np.isnan(values)
    if missing.ndim == 2:
        missing = missing.any(axis=1)
    if not missing.any():
        return None
    if metadata.resolved_nan_predictions == "mark":
        return missing
    count = int(missing.sum())
    with_missing = inputs.rows_with_missing(features)
    why = (f" {with_missing:,} of the rows have a missing feature value: the model does "
           "not score missing values, so declare [models.inputs] missing_values = "
           "\"refuse\" or \"fill\" in the registry, or fix the data"
           if with_missing else " No feature value is missing: the model itself "
           "returns NaN for these rows (check the model)")
    raise JobInputError(
        f"model {metadata.name!r} (version {metadata.version}) returned no number (NaN) "
        f"for {count:,} of {where}, so none of them is written.{why}; then materialize "
        f"trained_model[{metadata.name}] again. Or set [models.output] nan_predictions = "
        "\"mark\" to write such rows with null predictions (counted, and reported by "
        "predictions_valid as a warning).")


def prediction_arrays(values: np.ndarray, metadata: ModelMetadata,
                      unscored: np.ndarray | None = None) -> list[pa.Array]:
    """The prediction columns' data for checked ``values``, in contract order; rows
    in ``unscored`` are null in every prediction column."""
    if metadata.task != "multiclass":
        return [pa.array(values, type=pa.float64(), mask=unscored)]
    labels = np.asarray(metadata.class_labels, dtype=object)
    unknown = np.isnan(values).any(axis=1)
    # a row with any NaN probability has no predicted label (null)
    predicted = labels[np.argmax(np.where(np.isnan(values), -np.inf, values), axis=1)]
    label_array = pa.array(predicted, type=pa.string(), mask=unknown)
    return [label_array, *(pa.array(values[:, i], type=pa.float64(), mask=unscored)
                           for i in range(values.shape[1]))]
