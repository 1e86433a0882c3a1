"""The job store's three roles, as protocols.

Both stores (``JobStore`` in ``base``: SQLite, DynamoDB) play all three; a
caller that needs one role is typed with its protocol, so what it may touch is
visible in its signature. The methods' meaning is documented on ``JobStore``.

* ``AttemptStore``: one record per (asset partition, attempt) of a processing
  job, created only when no attempt of the partition is in flight, and moved
  through the state machine of ``records``;
* ``OwnerStore``: the process that runs a Dagster run's steps and its heartbeat,
  with the settings that judge it (``batch_assets.jobs.owner_liveness``);
* ``AdmissionStore``: instance reservations, the queue that keeps jobs within
  the instance quota of their type (``admission``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from resources.job_store.admission import Admission, Reservation
from resources.job_store.records import JobRecord, OwnerRecord
from resources.liveness import ProcessIdentity


class AttemptStore(Protocol):
    """Attempts of processing jobs and their status."""

    def create_attempt(
        self, asset_key: str, partition_key: str, job_name_for: Callable[[int], str],
        run_id: str, backend: str,
    ) -> JobRecord: ...

    def transition(
        self, job_name: str, new_status: str, *, expected: str | None = None,
        failure_reason: str | None = None,
    ) -> JobRecord: ...

    def get(self, job_name: str) -> JobRecord | None: ...

    def attempts(self, asset_key: str, partition_key: str) -> list[JobRecord]: ...

    def in_flight(self, asset_key: str, partition_key: str) -> JobRecord | None: ...

    def list_in_flight(self) -> list[JobRecord]: ...

    def take_over(self, job_name: str, run_id: str, expected_run_id: str) -> JobRecord: ...


class OwnerStore(Protocol):
    """Run owners: who runs a run's steps, when it last said it lives, and the
    settings that judge it (read-only here)."""

    @property
    def heartbeat_seconds(self) -> float: ...

    @property
    def lease_seconds(self) -> float: ...

    @property
    def run_workers_on_this_host(self) -> bool: ...

    def register_owner(self, run_id: str, identity: ProcessIdentity) -> OwnerRecord: ...

    def heartbeat(self, run_id: str) -> None: ...

    def owner(self, run_id: str) -> OwnerRecord | None: ...


class AdmissionStore(Protocol):
    """Instance reservations: admission of jobs within the instance quota of their type."""

    def reserve_instances(self, job_name: str, run_id: str, instance_type: str, count: int,
                          quota: int) -> Admission: ...

    def release_instances(self, job_name: str, reason: str = "released"
                          ) -> Reservation | None: ...

    def instances_in_use(self, instance_type: str) -> int: ...

    def reservation(self, job_name: str) -> Reservation | None: ...

    def reservations(self, instance_type: str, active_only: bool = False
                     ) -> list[Reservation]: ...
