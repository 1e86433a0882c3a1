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
