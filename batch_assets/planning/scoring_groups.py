"""Which models are scored together: one Processing job per dataset-day for all of them.

Models that score the same dataset read the same files. Scoring them in one job
reads, downloads and decodes each file once, pays instance start-up once, and
takes one job's share of the quota instead of one per model. A *scoring group*
is the models of one dataset that run on one instance type (a job has one
instance type): usually one group per dataset. Each group is one subsettable
multi-asset (``score_<dataset>``) whose assets are the models' predictions, so a
run that selects several of them runs one step, and one job, per day.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import dagster as dg

from batch_assets.registry import Registry, RegistryError

PREDICTIONS_PREFIX = "predictions"
_UNSAFE = re.compile(r"[^a-z0-9_]")


@dataclass(frozen=True)
class ScoringGroup:
    name: str  # the multi-asset's name, and the job store's key with the day
    dataset: str
    instance_type: str
    models: tuple[str, ...]  # in registry order

    @property
    def asset_keys(self) -> list[dg.AssetKey]:
        return [prediction_key(model) for model in self.models]


def prediction_key(model: str) -> dg.AssetKey:
    """``predictions/<model>``: one asset per registered model, so each model's
    materializations, metadata plots and check history are its own."""
    return dg.AssetKey([PREDICTIONS_PREFIX, model])


def model_of(key: dg.AssetKey) -> str | None:
    """The model of a predictions asset key; None for any other key."""
    path = key.path
    return path[1] if len(path) == 2 and path[0] == PREDICTIONS_PREFIX else None


def scoring_groups(registry: Registry) -> list[ScoringGroup]:
    """The registry's models grouped by (dataset, instance type), in registry order.

    A dataset whose models share one instance type (the usual case) gives one group
    named ``score_<dataset>``; otherwise each instance type gets its own group,
    ``score_<dataset>__<family>_<size>``.
    """
    by_dataset: dict[str, dict[str, list[str]]] = {}
    for spec in registry.models.values():
        by_dataset.setdefault(spec.dataset, {}).setdefault(spec.instance_type, []).append(
            spec.name)
    groups = []
    for dataset, by_type in by_dataset.items():
        base = "score_" + _UNSAFE.sub("_", dataset.lower())
        for instance_type, models in by_type.items():
            name = base if len(by_type) == 1 else (
                f"{base}__{_UNSAFE.sub('_', instance_type.removeprefix('ml.'))}")
            groups.append(ScoringGroup(name, dataset, instance_type, tuple(models)))
    names = [g.name for g in groups]
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:
        raise RegistryError(
            f"{registry.path}: datasets {', '.join(sorted(by_dataset))} give the same scoring "
            f"step name {clashes[0]!r} (names keep only a-z, 0-9 and _): rename one dataset")
    return groups


def group_of(registry: Registry, model: str) -> ScoringGroup:
    """The scoring group that scores ``model`` (UnknownModelError if not registered)."""
    registry.get(model)
    return next(g for g in scoring_groups(registry) if model in g.models)
