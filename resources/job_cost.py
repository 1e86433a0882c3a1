"""What a processing job costs: billed instance-seconds and an estimate in USD.

SageMaker bills Processing per instance-second while the job's instances run. A
job's description gives its start and end, not a billed figure, so the estimate
is ``instance count x (ProcessingEndTime - ProcessingStartTime)`` at the price the
user lists per instance type (``ProcessingBackend.instance_prices``, USD per
instance-hour; look prices up on https://aws.amazon.com/sagemaker/pricing/ under
"Processing" for your region: they differ by region and change over time, which
is why they are settings, not constants). It slightly under-counts (instances
start a little before the job reports InProgress); the AWS bill is the truth.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

_EXAMPLE = "e.g. ml.m5.xlarge=0.23,ml.m5.large=0.115"


@dataclass(frozen=True)
class JobCost:
    job_name: str
    instance_type: str
    instance_count: int
    seconds: float  # the job's start to end
    usd_per_hour: float | None  # None: no price listed for the type

    @property
    def billed_instance_seconds(self) -> float:
        return self.instance_count * self.seconds

    @property
    def usd(self) -> float | None:
        if self.usd_per_hour is None:
            return None
        return self.billed_instance_seconds / 3600 * self.usd_per_hour

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict) -> JobCost:
        return cls(**{name: raw[name] for name in
                      ("job_name", "instance_type", "instance_count", "seconds",
                       "usd_per_hour")})


def job_cost(description: dict, seconds: float, prices: dict[str, float]) -> JobCost:
    """The cost of a described job that ran ``seconds`` (start to end)."""
    cluster = description.get("ProcessingResources", {}).get("ClusterConfig", {})
    instance_type = cluster.get("InstanceType", "")
    return JobCost(job_name=description.get("ProcessingJobName", ""),
                   instance_type=instance_type,
                   instance_count=int(cluster.get("InstanceCount", 0)),
                   seconds=seconds, usd_per_hour=prices.get(instance_type))


def parse_instance_prices(text: str, source: str) -> dict[str, float]:
    """``"ml.m5.xlarge=0.23,ml.m5.large=0.115"`` -> USD per instance-hour per type;
    errors name ``source`` (an environment variable) and the format."""
    prices: dict[str, float] = {}
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        name, sep, value = (part.strip() for part in entry.partition("="))
        try:
            price = float(value)
        except ValueError:
            price = -1.0
        if not sep or not name.startswith("ml.") or price < 0:
            raise ValueError(
                f"{source}: {entry!r} is not <instance type>=<USD per hour>: write comma-"
                f"separated ml.<family>.<size>=<price> pairs, {_EXAMPLE}")
        if name in prices:
            raise ValueError(f"{source}: {name} is given twice; keep one price per type")
        prices[name] = price
    return prices


def shares(weights: dict[str, float]) -> dict[str, float]:
    """Each model's share of a shared job: in proportion to its predict seconds (the
    compute it used; reads, decoding and start-up are shared alike), equal when no
    model recorded any."""
    total = sum(weights.values())
    if total <= 0:
        return {name: 1 / len(weights) for name in weights} if weights else {}
    return {name: weight / total for name, weight in weights.items()}
