"""Check input Parquet files against a model before any compute starts.

Reading a footer costs one small read per file, so every file of the shard is
checked up front: a job with a bad file fails in seconds with a message naming
the file and the column, instead of after hours of scoring.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from container.contract import ModelMetadata
from container.errors import JobInputError

_MAX_LISTED_COLUMNS = 20


def read_input_schema(path: Path, label: str) -> pa.Schema:
    """The file's Arrow schema; a corrupt or non-Parquet file raises an error naming it."""
    return read_footer(path, label).schema.to_arrow_schema()


def read_footer(path: Path, label: str) -> pq.FileMetaData:
    """The file's footer (the file itself is closed again: read its data with a
    ``ParquetFile`` given this ``metadata``, which parses nothing twice); an error
    naming it if it is not Parquet. Opened as an Arrow ``OSFile``, which skips the
    filesystem lookup of a path: half the cost of a footer read, paid per file."""
    try:
        with pa.OSFile(str(path)) as handle:
            return pq.read_metadata(handle)
    except (pa.ArrowException, OSError) as exc:
        raise JobInputError(
            f"input file {label} is not a readable Parquet file ({exc}). "
            "Re-deliver the file or remove it from the input prefix."
        ) from exc


def _is_numeric(data_type: pa.DataType) -> bool:
    """Types a numeric feature is taken in (``container.model_inputs`` casts them,
    refusing values that would change). Decimals are not: their values have no exact
    float in general, and rounding them is the data owner's decision."""
    if pa.types.is_dictionary(data_type):
        data_type = data_type.value_type
    return (
        pa.types.is_integer(data_type)
        or pa.types.is_floating(data_type)
        or pa.types.is_boolean(data_type)
        or pa.types.is_null(data_type)
    )


def _is_categorical(data_type: pa.DataType) -> bool:
    return (
        pa.types.is_string(data_type)
        or pa.types.is_large_string(data_type)
        or pa.types.is_dictionary(data_type)
        or pa.types.is_integer(data_type)
        or pa.types.is_boolean(data_type)
        or pa.types.is_null(data_type)
    )


def _column_list(schema: pa.Schema) -> str:
    names = schema.names
    shown = ", ".join(names[:_MAX_LISTED_COLUMNS])
    more = len(names) - _MAX_LISTED_COLUMNS
    return shown + (f", ... ({more} more)" if more > 0 else "")


def check_columns(
    schema: pa.Schema,
    label: str,
    model: ModelMetadata,
    required: list[str] | None = None,
) -> None:
    """Raise a JobInputError naming the file and column when the schema cannot be scored."""
    categorical = set(model.categorical_features)
    for column in required if required is not None else model.input_columns:
        index = schema.get_field_index(column)
        if index < 0:
            raise JobInputError(
                f"input file {label}: column {column!r} is missing; model {model.name!r} "
                f"(version {model.version}) needs it. The file has: {_column_list(schema)}. "
                "Fix the data, or the model's feature/key list in the registry and retrain."
            )
        if column not in model.features:  # keys and passthrough columns: copied as they are
            continue
        data_type = schema.field(index).type
        acceptable = _is_categorical(data_type) if column in categorical else _is_numeric(data_type)
        if not acceptable and pa.types.is_decimal(data_type) and column not in categorical:
            raise JobInputError(
                f"input file {label}: feature column {column!r} has type {data_type}; "
                f"model {model.name!r} takes floating-point numbers, and a decimal's value "
                "has no exact float in general, so it is not converted silently. Cast the "
                "column to float64 (or float32) where the data is written, accepting that "
                "rounding.")
        if not acceptable:
            kind = "categorical" if column in categorical else "numeric"
            raise JobInputError(
                f"input file {label}: column {column!r} has type {data_type}, but model "
                f"{model.name!r} declares it {kind}. Fix the column type in the data or "
                "the feature's kind in the registry."
            )
