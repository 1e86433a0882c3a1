"""``data/<dataset>``: the delivered inference data, one daily partition per delivered day.

Why an external asset: the predictions' partition view shows a day not scored and
a day with no data alike ("Missing"). Each dataset gets an asset that Dagster does
not compute, with the predictions' daily partitions; the new data sensor records a
materialization of a day when the day's success marker is present (and again when
its files are re-delivered), with the day's file signature as data version. In
the UI the dataset's partition bar then shows which days were delivered, the
predictions assets depend on it (identity mapping, so a prediction partition's
upstream is its day's data), and a re-delivered day makes its predictions stale.

The alternatives were weighed: dynamic partitions registered by the sensor would
show only delivered days, but changing the predictions' partitions to dynamic
ones breaks backfills over date ranges and the daily schedule arithmetic; an
``AutomationCondition`` decides what runs, not what a user sees. An external
asset changes nothing about how predictions are launched.
"""

from __future__ import annotations

import dagster as dg

from batch_assets.registry import Registry

DATA_GROUP = "data"
# the tag Dagster reads a reported materialization's data version from
DATA_VERSION_TAG = "dagster/data_version"


def data_key(dataset: str) -> dg.AssetKey:
    return dg.AssetKey(["data", dataset])


def data_asset_specs(registry: Registry, partitions_def: dg.PartitionsDefinition
                     ) -> list[dg.AssetSpec]:
    """One external asset per dataset the registry's models score."""
    return [
        dg.AssetSpec(
            data_key(dataset),
            partitions_def=partitions_def,
            group_name=DATA_GROUP,
            kinds={"parquet"},
            description=f"Inference data of `{dataset}` delivered under `data/{dataset}/"
            f"dt=YYYY-MM-DD/` (complete once `{registry.success_marker}` is there). "
            "Recorded by the dataset's new data sensor: a day missing here has no data "
            f"delivered; scoring it fails at once. Scored by {', '.join(models)}.",
        )
        for dataset, models in registry.datasets.items()
    ]


def delivery_event(dataset: str, day: str, signature: str, files: int, size: int,
                   location: str) -> dg.AssetMaterialization:
    """The sensor's record that ``day`` of ``dataset`` is delivered (data version =
    the signature of its files, so a re-delivery is a new version)."""
    return dg.AssetMaterialization(
        asset_key=data_key(dataset),
        partition=day,
        metadata={
            "files": dg.MetadataValue.int(files),
            "bytes": dg.MetadataValue.int(size),
            "signature": dg.MetadataValue.text(signature),
            "location": dg.MetadataValue.path(location),
        },
        tags={DATA_VERSION_TAG: signature},
    )
