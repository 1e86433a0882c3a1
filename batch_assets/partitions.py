"""Partitions: one per registered model, and daily dates x models for predictions."""

from __future__ import annotations

import dagster as dg

from batch_assets.registry import Registry

DATE_DIMENSION = "date"
MODEL_DIMENSION = "model"


def model_partitions(registry: Registry) -> dg.StaticPartitionsDefinition:
    return dg.StaticPartitionsDefinition(registry.model_names)


def prediction_partitions(registry: Registry) -> dg.MultiPartitionsDefinition:
    return dg.MultiPartitionsDefinition(
        {
            DATE_DIMENSION: dg.DailyPartitionsDefinition(
                start_date=registry.partitions_start_date
            ),
            MODEL_DIMENSION: model_partitions(registry),
        }
    )


def prediction_partition_key(day: str, model: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({DATE_DIMENSION: day, MODEL_DIMENSION: model})


def split_prediction_key(
    partitions_def: dg.MultiPartitionsDefinition, partition_key: str
) -> tuple[str, str]:
    """(date, model) of a predictions partition key.

    Dagster hands a ``MultiPartitionKey`` to assets but a plain string to some
    check-only runs; both forms are accepted.
    """
    if not isinstance(partition_key, dg.MultiPartitionKey):
        partition_key = partitions_def.get_partition_key_from_str(partition_key)
    keys = partition_key.keys_by_dimension
    return keys[DATE_DIMENSION], keys[MODEL_DIMENSION]
