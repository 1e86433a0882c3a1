"""Instance admission: a job starts only when its instances fit the account's quota.

SageMaker counts its processing quota in instances per instance type, while the
Dagster pool ``sagemaker_processing`` counts jobs. With models of different
``instance_count`` a pool limit is either too low (idle quota) or too high
(``ResourceLimitExceeded`` and minutes of back-off). So before a job is
submitted, its instances are reserved in the job store, atomically across runs
and processes (a SQLite ``IMMEDIATE`` transaction; DynamoDB conditional
transactions), and released when the job reaches a terminal status or its
owner is found dead. ``ResourceLimitExceeded`` back-off stays as the last line
of defence (another tool using the same account, a quota lowered by AWS).

Fairness: a request of one type gets a ticket (an increasing number) when it
first asks, and is admitted only if it fits together with every older request of
its type that still waits:

    in_use + (instances of the older waiting tickets) + count <= quota

So a younger request may overtake an older one only when that cannot delay the
older one (it would fit even after all of them are admitted); a request for 4
instances is never starved by a stream of 1-instance requests, because once it
waits no younger request can take the instances it needs. It is FIFO without
idling: small requests fill gaps only when nothing older is waiting for them.

A waiting request renews its ticket at each poll; a ticket not renewed within
the job store's ``lease_seconds`` (its owner crashed, or is stuck) no longer
counts as ahead of anyone, and the reaper withdraws tickets whose owner is
dead, so a dead waiter never blocks the queue for good.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass


class AdmissionError(Exception):
    """Base of instance admission errors."""


class RequestExceedsQuotaError(AdmissionError, ValueError):
    """A job asks for more instances than the quota of its type: it can never fit."""


class ReservationReleasedError(AdmissionError):
    """The job's reservation was released (job ended, owner judged dead, or withdrawn)."""


class ReservationMismatchError(AdmissionError, ValueError):
    """A job asked again with another instance type or count than it first reserved."""


class InstanceQuotaWaitExhausted(AdmissionError):
    """The instances did not fit the quota within ``quota_wait_seconds``."""


@dataclass(frozen=True)
class Admission:
    """The answer to one reservation request."""

    admitted: bool
    in_use: int  # instances of the type held by admitted jobs (after admitting this one)
    ahead: int  # older live requests of the type still waiting
    instance_type: str = ""
    count: int = 0
    quota: int = 0
    ahead_instances: int = 0  # instances those older requests wait for

    def waiting_message(self) -> str:
        """'waiting for 4 ml.m5.xlarge (quota 20, in use 18)', plus who is ahead."""
        ahead = (f"; {self.ahead} older request(s) for {self.ahead_instances} waiting ahead"
                 if self.ahead else "")
        return (f"waiting for {self.count} {self.instance_type} (quota {self.quota}, "
                f"in use {self.in_use}{ahead})")


@dataclass(frozen=True)
class Reservation:
    """One job's request for instances, and its timeline (epoch seconds)."""

    job_name: str
    run_id: str  # the run that asked for the instances (kept when another adopts the job)
    instance_type: str
    count: int
    quota: int  # the quota the requester was configured with
    ticket: int  # queue position: smaller is older
    requested_at: float
    renewed_at: float  # last time the requester asked again (lease of a waiting ticket)
    admitted_at: float | None = None
    released_at: float | None = None
    release_reason: str | None = None

    @property
    def held(self) -> bool:
        return self.admitted_at is not None and self.released_at is None

    @property
    def waiting(self) -> bool:
        return self.admitted_at is None and self.released_at is None

    @property
    def active(self) -> bool:
        return self.released_at is None


def check_request(instance_type: str, count: int, quota: int) -> None:
    """Refuse at once what can never be admitted."""
    if count < 1:
        raise ValueError(f"instance count of {instance_type} must be at least 1, got {count}")
    if quota < 1:
        raise ValueError(f"instance quota of {instance_type} must be at least 1, got {quota}; "
                         "remove the type from instance_quotas to turn admission off for it")
    if count > quota:
        raise RequestExceedsQuotaError(
            f"the job asks for {count} {instance_type} but the instance quota of that type "
            f"is {quota}, so it can never fit: lower the model's instance_count or raise "
            f"the quota (instance_quotas, and the SageMaker service quota)")


def decide(ticket: int, count: int, quota: int, instance_type: str, in_use: int,
           waiting: Iterable[Reservation], now: float, lease_seconds: float) -> Admission:
    """Admit ``ticket`` (asking ``count``) or not, by the fairness rule of this module.

    ``waiting`` are the unadmitted, unreleased requests of the type; those older
    than ``ticket`` and renewed within ``lease_seconds`` are ahead of it.
    """
    ahead = [w for w in waiting
             if w.ticket < ticket and now - w.renewed_at <= lease_seconds]
    ahead_instances = sum(w.count for w in ahead)
    admitted = in_use + ahead_instances + count <= quota
    return Admission(admitted, in_use + count if admitted else in_use, len(ahead),
                     instance_type, count, quota, ahead_instances)


def parse_instance_quotas(text: str, source: str) -> dict[str, int]:
    """``"ml.m5.xlarge=20,ml.m5.large=10"`` -> ``{"ml.m5.xlarge": 20, "ml.m5.large": 10}``.

    ``source`` names where the text came from (an environment variable), so an
    error says what to fix and where.
    """
    quotas: dict[str, int] = {}
    example = "e.g. ml.m5.xlarge=20,ml.m5.large=10"
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        name, sep, value = (part.strip() for part in entry.partition("="))
        if not sep or not name.startswith("ml.") or not value.isdigit() or int(value) < 1:
            raise ValueError(
                f"{source}: {entry!r} is not <instance type>=<instances>: write comma-"
                f"separated ml.<family>.<size>=<positive integer> pairs, {example}")
        if name in quotas:
            raise ValueError(f"{source}: {name} is given twice; keep one quota per type")
        quotas[name] = int(value)
    return quotas


def peak_in_use(reservations: Iterable[Reservation], until: float | None = None
                ) -> tuple[int, float | None]:
    """Largest number of instances held at one instant, and when (from the timeline).

    A reservation holds its instances from ``admitted_at`` to ``released_at``
    (or ``until``, default now, while it is held); a release and an admission at
    the same instant do not overlap.
    """
    end = time.time() if until is None else until
    events: list[tuple[float, int, int]] = []
    for r in reservations:
        if r.admitted_at is None:
            continue
        events.append((r.admitted_at, 1, r.count))
        events.append((r.released_at if r.released_at is not None else end, 0, -r.count))
    peak, at, current = 0, None, 0
    for moment, _order, delta in sorted(events):  # releases (0) before admissions (1)
        current += delta
        if current > peak:
            peak, at = current, moment
    return peak, at
