"""``instance_count = "auto"``: size a scoring job from the day's input and a target time.

A model registered with ``instance_count = "auto"`` and ``target_minutes`` gets as
many instances as its share of the day needs to finish in that time, at the
throughput its earlier jobs measured: each manifest records the rows a file had,
its input bytes and the seconds the model's predictor spent on it
(``predict_seconds``, one worker thread's time, counted here as one core's). So:

    rows of the day   = pending input bytes / (bytes per row, from the manifests)
    core-seconds      = sum over the job's models of rows / (rows per core-second)
    instances         = ceil(core-seconds / (cores per instance x target seconds x 0.7))

The 0.7 leaves room for what predict time does not count (reading, decoding,
writing, start-up). The result is capped by the largest ``max_instance_count`` of
the job's auto models, the instance quota of the type (``instance_quotas``) and
the number of files (``ShardedByS3Key`` gives an instance whole files), and is at
least the fixed ``instance_count`` of the job's other models. A model with no
measured day yet (its first) gets its ``max_instance_count``: the first day is
fast, and it measures the throughput the next days are sized with. The plan and
its reasons are in the materialization's metadata (``sizing``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, timedelta

from batch_assets.instance_types import vcpus
from batch_assets.planning.day_manifests import day_manifests, readable
from batch_assets.registry import ModelSpec
from resources.storage import ObjectStorage

EFFICIENCY = 0.7
LOOKBACK_DAYS = 7


@dataclass(frozen=True)
class Throughput:
    day: str
    rows_per_core_second: float
    bytes_per_row: float


@dataclass
class SizingPlan:
    instances: int
    reason: str
    details: dict = field(default_factory=dict)

    def metadata(self) -> dict:
        return {"instances": self.instances, "reason": self.reason, **self.details}


def measured_throughput(storage: ObjectStorage, model: str, day: str) -> Throughput | None:
    """The model's throughput on the latest day before ``day`` (up to a week back)
    whose manifests record predict seconds."""
    for back in range(1, LOOKBACK_DAYS + 1):
        earlier = (date.fromisoformat(day) - timedelta(days=back)).isoformat()
        # an unreadable manifest is left out: the others still measure the day
        manifests = readable(day_manifests(storage, model, earlier))
        timed = [m for m in manifests if m.predict_seconds and m.rows_in]
        seconds = sum(m.predict_seconds for m in timed)
        rows = sum(m.rows_in for m in timed)
        if seconds > 0 and rows:
            return Throughput(earlier, rows / seconds, sum(m.input_bytes for m in timed) / rows)
    return None


def plan_instances(storage: ObjectStorage, specs: list[ModelSpec],
                   pending_bytes: dict[str, int], pending_files: int, day: str,
                   quota: int | None) -> SizingPlan:
    """The instance count of a job scoring ``specs`` (``pending_bytes``: each model's
    input bytes still to score)."""
    fixed = max((s.instance_count for s in specs if not s.auto_instances), default=0)
    auto = [s for s in specs if s.auto_instances]
    if not auto:
        return SizingPlan(fixed, "fixed instance_count")
    cap = max(s.instance_count for s in auto)  # max_instance_count of auto models
    caps = {"max_instance_count": cap, "input files": pending_files}
    if quota is not None:
        caps["instance quota"] = quota
    limit = min(caps.values())
    cores = vcpus(specs[0].instance_type) or 1
    target = min(s.target_minutes for s in auto) * 60
    measured = {s.name: measured_throughput(storage, s.name, day) for s in auto}
    unmeasured = [name for name, t in measured.items() if t is None]
    details: dict = {"target_minutes": target / 60, "cores_per_instance": cores,
                     "caps": caps}
    if unmeasured:
        wanted = cap
        reason = (f"no measured throughput yet for {', '.join(unmeasured)}: "
                  f"max_instance_count {cap}")
    else:
        core_seconds = 0.0
        for spec in auto:
            found = measured[spec.name]
            rows = pending_bytes.get(spec.name, 0) / found.bytes_per_row
            core_seconds += rows / found.rows_per_core_second
            details[spec.name] = {"rows_estimate": round(rows),
                                  "rows_per_core_second": round(found.rows_per_core_second),
                                  "measured_on": found.day}
        wanted = max(1, math.ceil(core_seconds / (cores * target * EFFICIENCY)))
        details["core_seconds_estimate"] = round(core_seconds, 1)
        reason = (f"{core_seconds:.0f} core-seconds of scoring in {target / 60:g} min on "
                  f"{cores}-core instances needs {wanted}")
    instances = max(fixed, min(wanted, limit), 1)
    if wanted > limit:
        binding = min(caps, key=caps.get)
        reason += f", capped at {limit} by {binding}"
    if fixed > min(wanted, limit):
        reason += f"; {fixed} for the job's models with a fixed instance_count"
    return SizingPlan(instances, reason, details)
