"""``JobStore``: the job store resource's interface and settings.

It answers "is a job already running for this partition?" before anything is
submitted, so two runs of the same partition (a retried run, a sensor tick and a
manual launch) never both start a job, and it keeps the attempt history that
retries and the UI read. Every record names its owner run, and the store keeps
one owner record per run so that a record whose owner died can be told from one
being worked on; it also holds the instance reservations of admission.

The methods are abstract: ``SQLiteJobStore`` (``sqlite``, the embedded default)
and ``DynamoDBJobStore`` (``dynamodb``) implement them with the same semantics,
and the contract tests (``tests/unit/test_job_store.py``) run against both. By role,
the methods are the protocols of ``protocols``: attempts, owners, admission.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable

import dagster as dg
from pydantic import ConfigDict, Field

from resources.job_store.admission import Admission, Reservation
from resources.job_store.records import JobRecord, OwnerRecord
from resources.liveness import ProcessIdentity


class JobStore(dg.ConfigurableResource):
    """Interface of the job store (SQLite by default, DynamoDB on AWS)."""

    model_config = ConfigDict(extra="forbid")  # a misspelt setting is refused by name

    heartbeat_seconds: float = Field(
        default=10.0,
        description="How often a step renews the heartbeat of the run that owns its jobs.",
    )
    lease_seconds: float = Field(
        default=60.0,
        description="An owner run on another host whose heartbeat is older than this is "
        "dead, and its in-flight jobs are adopted by the next run (on this host a dead "
        "process is seen at once). Keep it several heartbeats long. It is also the lease "
        "of a request waiting for instances (instance_quotas): one not renewed this long "
        "stops holding up younger requests.",
    )
    run_workers_on_this_host: bool = Field(
        default=True,
        description="Dagster run workers run on this machine (dagster dev, the dagster "
        "CLI, one VM): a run whose worker process is gone is failed and its pool slot "
        "freed by the reaper sensor. Set false when run workers run in other containers "
        "(ECS, Kubernetes); then Dagster's run monitoring must fail runs that die before "
        "their step starts, and heartbeats judge the rest.",
    )

    # --- attempts (protocols.AttemptStore) ------------------------------------------

    @abstractmethod
    def create_attempt(
        self, asset_key: str, partition_key: str, job_name_for: Callable[[int], str],
        run_id: str, backend: str,
    ) -> JobRecord:
        """Record the next attempt as Pending, unless one is in flight.

        ``job_name_for(attempt)`` names the job of the new attempt. Raises
        ``JobInFlightError`` when an attempt of the partition is in flight, and
        ``AttemptExistsError`` when a concurrent writer took the number.
        """

    @abstractmethod
    def transition(
        self, job_name: str, new_status: str, *, expected: str | None = None,
        failure_reason: str | None = None,
    ) -> JobRecord:
        """Move a job to ``new_status`` if the state machine (and ``expected``) allow it."""

    @abstractmethod
    def get(self, job_name: str) -> JobRecord | None:
        """The record of a job, by its name (None if there is none)."""

    @abstractmethod
    def attempts(self, asset_key: str, partition_key: str) -> list[JobRecord]:
        """Every attempt of a partition, oldest first."""

    def in_flight(self, asset_key: str, partition_key: str) -> JobRecord | None:
        """The partition's attempt in flight, if any."""
        found = [r for r in self.attempts(asset_key, partition_key) if r.in_flight]
        return found[-1] if found else None

    @abstractmethod
    def list_in_flight(self) -> list[JobRecord]:
        """Every attempt in flight, of any partition, oldest first."""

    @abstractmethod
    def take_over(self, job_name: str, run_id: str, expected_run_id: str) -> JobRecord:
        """Make ``run_id`` the owner of an in-flight job still owned by ``expected_run_id``.

        Raises ``IllegalTransitionError`` when the job ended or another run took it.
        """

    # --- run owners (protocols.OwnerStore) ------------------------------------------

    @abstractmethod
    def register_owner(self, run_id: str, identity: ProcessIdentity) -> OwnerRecord:
        """Record (or replace) the process that runs ``run_id``'s steps; heartbeat now."""

    @abstractmethod
    def heartbeat(self, run_id: str) -> None:
        """Renew ``run_id``'s heartbeat."""

    @abstractmethod
    def owner(self, run_id: str) -> OwnerRecord | None:
        """The owner record of a run (None if it never registered one)."""

    # --- instance admission (protocols.AdmissionStore; see admission) ---------------

    @abstractmethod
    def reserve_instances(self, job_name: str, run_id: str, instance_type: str, count: int,
                          quota: int) -> Admission:
        """Ask for ``count`` instances of ``instance_type`` for ``job_name``; one atomic step.

        The first call queues the request (a ticket); every call renews the ticket
        and admits it if it fits by the fairness rule; a call for an admitted job
        answers admitted again. Raises ``RequestExceedsQuotaError`` when ``count``
        exceeds ``quota`` (it can never fit), ``ReservationReleasedError`` when the
        job's reservation was released meanwhile, ``ReservationMismatchError`` when
        the job first asked for another type or count.
        """

    @abstractmethod
    def release_instances(self, job_name: str, reason: str = "released"
                          ) -> Reservation | None:
        """Give the job's instances (or its waiting ticket) back; idempotent.

        Returns the reservation as released (None if the job never reserved).
        Reaching a terminal status releases too, in the store's ``transition``.
        """

    @abstractmethod
    def instances_in_use(self, instance_type: str) -> int:
        """Instances of the type held by admitted, unreleased reservations."""

    @abstractmethod
    def reservation(self, job_name: str) -> Reservation | None:
        """The job's reservation and its timeline (None if the job never reserved)."""

    @abstractmethod
    def reservations(self, instance_type: str, active_only: bool = False
                     ) -> list[Reservation]:
        """The type's reservations, oldest ticket first: the admission timeline (with
        ``active_only``: those waiting or held)."""
