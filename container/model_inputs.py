"""A model's feature columns as its predictors take them: every type checked, every
missing value handled by the model's declared policy, in one place.

Every predictor path of a model (the framework, oneDAL, a folded linear map, ONNX
Runtime on a verified export) reads its features from the batch ``prepare``
returns, so whatever path scores a row, it scores the same values:

* **Types.** A numeric feature arrives as any Arrow integer, float, boolean or null
  type (or dictionary-encoded numbers) and is given to the model in the precision
  its predictors compute in (``feature_precision``: float32 for XGBoost and the
  networks, float64 for LightGBM and scikit-learn). Nothing changes value on the
  way: integers are cast with Arrow's checked cast, which refuses any beyond 2^24
  (float32) or 2^53 (float64), where some integers have no exact float; float16
  widens exactly; float64 values for a float32 model round to float32 as the
  framework itself rounds them (XGBoost and the networks compute in float32), but
  a value beyond float32's range, which would become infinity, is refused.
  Decimals are refused by ``container.schema_check`` before any compute. A
  categorical feature's dictionary-encoded strings are decoded to plain strings.
* **Missing values** (null, or NaN in a float column), by
  ``ModelMetadata.resolved_missing_values``: ``native`` hands them on as NaN (trees
  and scikit-learn pipelines handle them themselves); ``refuse`` fails the model on
  the rows' file, naming each column and its count; ``fill`` replaces them with
  the model's ``fill_values`` (declared constants, or statistics measured at import
  or training and stored in ``model.json``).

Refusals are ``JobInputError`` naming the rows (``where``: which file), the column,
its type or count, and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from container.contract import ModelMetadata
from container.errors import JobInputError

FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True)
class MissingCount:
    column: str
    count: int


def count_missing(column: pa.Array) -> int:
    """Nulls, and NaN in a floating-point column."""
    missing = column.null_count
    if pa.types.is_floating(column.type) and len(column) > missing:
        missing += pc.sum(pc.is_nan(column)).as_py() or 0
    return missing


def missing_mask(column: pa.Array) -> pa.Array:
    """True where ``column`` is null or NaN (never null itself)."""
    nulls = pc.is_null(column)
    if not pa.types.is_floating(column.type):
        return nulls
    return pc.or_kleene(nulls, pc.is_nan(column))


class ModelInputs:
    """Prepares record batches for one model (see the module docstring)."""

    def __init__(self, metadata: ModelMetadata, precision: type = np.float32) -> None:
        self.metadata = metadata
        self.policy = metadata.resolved_missing_values
        self.float_type = pa.float64() if precision is np.float64 else pa.float32()
        self.categorical = frozenset(metadata.categorical_features)

    def prepare(self, batch: pa.RecordBatch, where: str) -> pa.RecordBatch:
        """``batch`` with its feature columns typed and its missing values handled;
        the batch itself when nothing changes (the common case costs a type check
        per column, and for ``refuse`` a NaN count per float column)."""
        replaced: dict[str, pa.Array] = {}
        missing: list[MissingCount] = []
        for name in self.metadata.features:
            column = batch.column(name)
            typed = self._typed(name, column, where)
            if self.policy != "native":
                count = count_missing(typed)
                if count and self.policy == "refuse":
                    missing.append(MissingCount(name, count))
                elif count:
                    typed = self._filled(name, typed)
            if typed is not column:
                replaced[name] = typed
        if missing:
            raise self._refusal(missing, batch.num_rows, where)
        if not replaced:
            return batch
        arrays = [replaced.get(name, batch.column(name)) for name in batch.schema.names]
        schema = pa.schema([pa.field(name, array.type) for name, array
                            in zip(batch.schema.names, arrays, strict=True)],
                           metadata=batch.schema.metadata)
        return pa.RecordBatch.from_arrays(arrays, schema=schema)

    def rows_with_missing(self, batch: pa.RecordBatch) -> int:
        """Rows of ``batch`` with a missing feature value (for messages)."""
        mask = np.zeros(batch.num_rows, dtype=bool)
        for name in self.metadata.features:
            mask |= missing_mask(batch.column(name)).to_numpy(zero_copy_only=False)
        return int(mask.sum())

    def _typed(self, name: str, column: pa.Array, where: str) -> pa.Array:
        data_type = column.type
        if pa.types.is_dictionary(data_type):
            column = column.dictionary_decode()
            data_type = column.type
        if name in self.categorical:
            return column
        if pa.types.is_floating(data_type):
            if pa.types.is_float16(data_type):
                return column.cast(pa.float32())  # exact
            if pa.types.is_float64(data_type) and self.float_type == pa.float32():
                self._check_float32_range(name, column, where)
            return column
        if (pa.types.is_integer(data_type) or pa.types.is_boolean(data_type)
                or pa.types.is_null(data_type)):
            try:
                return column.cast(self.float_type)  # checked: no integer changes value
            except pa.ArrowInvalid as exc:
                limit = "2^24 (16,777,216)" if self.float_type == pa.float32() else \
                    "2^53 (9,007,199,254,740,992)"
                raise JobInputError(
                    f"{where}: feature column {name!r} has type {data_type} with values "
                    f"beyond ±{limit}, which model {self.metadata.name!r} "
                    f"({self.metadata.framework}, computing in {self.float_type}) cannot "
                    f"take without changing them ({exc}). Deliver the column as a float "
                    "type (the rounding is then the data's, made knowingly), or scale it "
                    "into range before scoring and training.") from exc
        raise JobInputError(
            f"{where}: feature column {name!r} has type {data_type}, which model "
            f"{self.metadata.name!r} cannot take as a number without changing its values; "
            "deliver it as an integer or float column")

    def _check_float32_range(self, name: str, column: pa.Array, where: str) -> None:
        extremes = pc.min_max(column)
        low, high = extremes["min"].as_py(), extremes["max"].as_py()
        largest = max(abs(low), abs(high)) if low is not None else 0.0
        if np.isfinite(largest) and largest > FLOAT32_MAX:
            raise JobInputError(
                f"{where}: feature column {name!r} (double) holds {largest:.6g}, beyond "
                f"float32's range (±{FLOAT32_MAX:.6g}), in which model "
                f"{self.metadata.name!r} ({self.metadata.framework}) computes: it would "
                "become infinity. Scale the column into range (in training too) or fix "
                "the values.")

    def _filled(self, name: str, column: pa.Array) -> pa.Array:
        value = self.metadata.fill_values.get(name)
        if value is None:  # a bundle promises a value for every feature under "fill"
            raise JobInputError(
                f"model {self.metadata.name!r} (version {self.metadata.version}) fills "
                f"missing values but its model.json has no fill value for feature {name!r}; "
                "materialize trained_model again to make a complete bundle")
        try:
            fill = pa.scalar(value, column.type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as exc:
            raise JobInputError(
                f"model {self.metadata.name!r}: fill value {value!r} of feature {name!r} "
                f"does not fit the column's type {column.type} ({exc}); fix fill_values in "
                "the registry's [models.inputs] and materialize trained_model again") from exc
        if pa.types.is_floating(column.type):
            return pc.if_else(missing_mask(column), fill, column)
        return pc.fill_null(column, fill)

    def _refusal(self, missing: list[MissingCount], rows: int, where: str) -> JobInputError:
        counts = ", ".join(f"{m.column!r} {m.count:,}" for m in missing)
        model = self.metadata
        default = (" (the default for torch, tensorflow and onnx models)"
                   if not model.missing_values else "")
        return JobInputError(
            f"{where}: missing values (null or NaN) in feature column(s) {counts} of "
            f"{rows:,} rows; model {model.name!r} ({model.framework}) refuses missing values "
            f"(missing_values = \"refuse\"{default}), because a number computed from a "
            "missing value would look right and be wrong. Fill or drop those rows in the "
            "data and deliver the file again, or declare [models.inputs] missing_values = "
            "\"fill\" with fill_values or fill_statistic in the registry and materialize "
            f"trained_model[{model.name}] again.")


def measured_fill_values(metadata: ModelMetadata, rows: pa.Table | None,
                         what: str) -> dict[str, float | str]:
    """Every feature's fill value for a model whose policy is ``fill``: the declared
    constants (``metadata.fill_values``) and, for the other features, the
    ``fill_statistic`` of ``rows`` (the holdout at import, the training rows at
    training: ``what`` names them), stored in ``model.json`` so every job fills alike.
    Empty for the other policies."""
    if metadata.resolved_missing_values != "fill":
        return {}
    values = dict(metadata.fill_values)
    for name in metadata.features:
        if name in values:
            continue
        if not metadata.fill_statistic or rows is None:
            raise JobInputError(
                f"model {metadata.name!r} fills missing values but has no fill value for "
                f"feature {name!r} and no {what} to measure one on; give it in "
                "[models.inputs] fill_values or set fill_statistic")
        column = rows.column(name).cast(pa.float64())
        known = column.to_numpy(zero_copy_only=False)
        known = known[~np.isnan(known)]
        if not len(known):
            raise JobInputError(
                f"model {metadata.name!r}: feature {name!r} has no value in the {what} "
                f"({rows.num_rows:,} rows), so its {metadata.fill_statistic} cannot fill "
                "it; give it a constant in [models.inputs] fill_values")
        statistic = np.median if metadata.fill_statistic == "median" else np.mean
        values[name] = float(statistic(known))
    return values


def prepared_table(inputs: ModelInputs, table: pa.Table, what: str) -> pa.Table:
    """``table`` (labelled rows: training or holdout) with its features prepared as
    scoring prepares them, batch by batch."""
    batches = [inputs.prepare(batch, what) for batch in table.to_batches()]
    if not batches:
        return table
    return pa.Table.from_batches(batches)
