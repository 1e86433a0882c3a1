"""Partitions: one per registered model (trained models), and daily dates (predictions).

Each model has its own predictions asset (``batch_assets.planning.scoring_groups``), so the
predictions partitions are just the days: a partition of ``predictions/<model>`` is
``YYYY-MM-DD``.
"""

from __future__ import annotations

import dagster as dg

from batch_assets.registry import Registry


def model_partitions(registry: Registry) -> dg.StaticPartitionsDefinition:
    return dg.StaticPartitionsDefinition(registry.model_names)


def prediction_partitions(registry: Registry) -> dg.DailyPartitionsDefinition:
    return dg.DailyPartitionsDefinition(start_date=registry.partitions_start_date)
