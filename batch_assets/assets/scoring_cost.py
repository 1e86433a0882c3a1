"""Cost in the UI: each scoring job's estimate, a model's share of it, the day's total.

A job's ``JobCost`` is written beside its inputs (``jobs/<job>/cost.json``) when it
ends, so a day's total across every model, scoring group and attempt (failed
attempts are billed too) is a few small reads, not a query of the backend.
"""

from __future__ import annotations

from dataclasses import dataclass

from batch_assets.planning.layout import job_cost_key
from batch_assets.planning.scoring_groups import scoring_groups
from batch_assets.registry import Registry
from resources.job_cost import JobCost, job_cost
from resources.job_store import AttemptStore
from resources.storage import ObjectStorage


def record_job_cost(storage: ObjectStorage, prices: dict[str, float], description: dict,
                    seconds: float) -> JobCost:
    cost = job_cost(description, seconds, prices)
    storage.write_json(job_cost_key(cost.job_name), cost.to_dict())
    return cost


@dataclass(frozen=True)
class DayCost:
    jobs: int
    billed_instance_seconds: float
    usd: float | None  # None when a job's instance type has no price
    unpriced_types: tuple[str, ...]


def day_cost(storage: ObjectStorage, job_store: AttemptStore, registry: Registry,
             day: str) -> DayCost:
    """Every recorded scoring job of ``day`` across the registry's scoring groups."""
    costs = []
    for group in scoring_groups(registry):
        for record in job_store.attempts(group.name, day):
            key = job_cost_key(record.job_name)
            if storage.exists(key):
                costs.append(JobCost.from_dict(storage.read_json(key)))
    unpriced = tuple(sorted({c.instance_type for c in costs if c.usd is None}))
    return DayCost(
        jobs=len(costs),
        billed_instance_seconds=sum(c.billed_instance_seconds for c in costs),
        usd=None if unpriced else sum(c.usd or 0.0 for c in costs),
        unpriced_types=unpriced,
    )


def cost_metadata(cost: JobCost | None, share: float | None, day: DayCost) -> dict:
    """The cost entries of one model's materialization."""
    metadata: dict = {
        "day_scoring_jobs": day.jobs,
        "day_billed_instance_seconds": round(day.billed_instance_seconds, 1),
    }
    if day.usd is not None:
        metadata["day_estimated_cost_usd"] = round(day.usd, 4)
    elif day.unpriced_types:
        metadata["cost_note"] = (f"no price for {', '.join(day.unpriced_types)}: set "
                                 "processing.instance_prices (BATCH_INSTANCE_PRICES on AWS)")
    if cost is None:
        return metadata
    metadata |= {
        "billed_instance_seconds": round(cost.billed_instance_seconds, 1),
        "cost_share": round(share or 0.0, 4),
    }
    if cost.usd is not None:
        metadata["job_estimated_cost_usd"] = round(cost.usd, 4)
        metadata["estimated_cost_usd"] = round(cost.usd * (share or 0.0), 4)
    return metadata
