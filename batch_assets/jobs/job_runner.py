"""Run one processing job for one asset partition, recorded in the job store.

The steps every processing-backed asset shares: finish (adopt) an attempt that
is still in flight for the partition, or record a new attempt, submit it, wait,
and keep the job store in step with what the backend reports.

Crashes on the Dagster side are expected, not exceptional. While a step works it
owns its records: its process is registered in the job store and renews a
heartbeat. The next run of the partition therefore knows whether an in-flight
attempt's owner still lives: a job that reached the backend is adopted (waited
for, taken over when its owner died), never started twice; a job that never
reached it is left to a live owner and closed as Failed when the owner is dead.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import dagster as dg
from botocore.exceptions import ClientError, ParamValidationError

from batch_assets.jobs.failures import (
    CONFIGURATION,
    QUOTA_EXHAUSTED,
    classify_exception,
    classify_job_failure,
)
from batch_assets.jobs.owner_liveness import job_owner_verdict
from resources.job_status import FAILED, IN_PROGRESS, STOPPING, TERMINAL
from resources.job_store import (
    AttemptStore,
    IllegalTransitionError,
    JobInFlightError,
    JobRecord,
    JobStore,
)
from resources.job_store.admission import (
    InstanceQuotaWaitExhausted,
    RequestExceedsQuotaError,
)
from resources.job_store.waiting import wait_for_instances
from resources.liveness import Heartbeat, this_process
from resources.processing import ProcessingBackend
from resources.processing_request import processing_job_name
from resources.storage import ObjectStorage

# how often a run waiting for another live run's submission says so in its log
_WAITING_LOG_SECONDS = 60.0


@dataclass(frozen=True)
class JobOutcome:
    record: JobRecord
    description: dict
    adopted: bool

    @property
    def status(self) -> str:
        return self.description["ProcessingJobStatus"]

    @property
    def seconds(self) -> float:
        start = self.description.get("ProcessingStartTime")
        end = self.description.get("ProcessingEndTime")
        return (end - start).total_seconds() if start and end else 0.0

    @property
    def failure_reason(self) -> str:
        return self.description.get("FailureReason") or f"job ended {self.status}"

    def metadata(self, links: dict[str, str]) -> dict:
        """What the UI shows about the job: name, status, attempt, ARN and links."""
        metadata = {
            "job_name": self.record.job_name,
            "job_status": self.status,
            "attempt": self.record.attempt,
            "adopted_in_flight_job": self.adopted,
            "seconds": round(self.seconds, 2),
        }
        if self.description.get("ProcessingJobArn"):
            metadata["job_arn"] = self.description["ProcessingJobArn"]
        return metadata | link_metadata(links)

    @property
    def retryable(self) -> bool:
        """False for failures a rerun cannot fix (bad input, permissions, ...)."""
        return classify_job_failure(self.failure_reason).retryable

    def failure_summary(self, kind: str, links: dict[str, str]) -> str:
        """'<kind> job <name> Failed: <reason> (see <where>). [<class>] <what to do>'."""
        where = links.get("console_url") or links.get("job_dir")
        see = f" (see {where})" if where else ""
        return (f"{kind} job {self.record.job_name} {self.status}: {self.failure_reason}{see}. "
                f"{classify_job_failure(self.failure_reason).describe()}")


def link_metadata(links: dict[str, str]) -> dict:
    """Console and log links as URL metadata; local job folders as paths."""
    return {
        name: dg.MetadataValue.url(target) if target.startswith("https://")
        else dg.MetadataValue.path(target)
        for name, target in links.items()
    }


class PartitionJobRunner:
    """Adopts or runs the processing job of one partition; use it as a context manager
    so the run's process is registered and its heartbeat renewed while the step works."""

    def __init__(
        self,
        context: dg.AssetExecutionContext,
        asset_name: str,
        partition_key: str,
        storage: ObjectStorage,
        job_store: JobStore,
        processing: ProcessingBackend,
    ) -> None:
        self.context = context
        self.asset_name = asset_name
        self.partition_key = partition_key
        self.job_store = job_store
        self.processing = processing
        self.run_id = context.run.run_id
        self.jobs = processing.jobs(storage)

    def __enter__(self) -> PartitionJobRunner:
        self.job_store.register_owner(self.run_id, this_process())
        self._heartbeat = Heartbeat(lambda: self.job_store.heartbeat(self.run_id),
                                    self.job_store.heartbeat_seconds, self.run_id)
        self._heartbeat.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._heartbeat.__exit__(*exc)

    def finish_in_flight(self) -> JobOutcome | None:
        """Wait for the partition's in-flight attempt, if any, instead of starting a twin.

        A job the backend knows is waited for; when its owner is dead this run takes
        it over, so the record stays watched. A job the backend does not know was
        never submitted: this run waits while its owner lives (it may be submitting,
        or waiting for quota) and closes the record as Failed once the owner is dead.
        """
        announced_at = 0.0
        while True:
            record = self.job_store.in_flight(self.asset_name, self.partition_key)
            if record is None:
                return None
            description = self.jobs.describe(record.job_name)
            verdict = job_owner_verdict(self.context.instance, self.job_store, record.run_id,
                                        self.run_id)
            if description is None:
                if verdict.alive and record.run_id != self.run_id:
                    if time.monotonic() - announced_at > _WAITING_LOG_SECONDS:
                        self.context.log.info(
                            f"job {record.job_name} (attempt {record.attempt}) is being "
                            f"submitted by another run: {verdict.reason}; waiting for it")
                        announced_at = time.monotonic()
                    time.sleep(self.processing.poll_interval_seconds)
                    continue
                why = verdict.reason if not verdict.alive else "an earlier try of this run " \
                    "stopped before submitting"
                self.context.log.warning(f"job {record.job_name} was never submitted ({why}): "
                                         "closing its record as Failed")
                self._record(record.job_name, FAILED, f"never submitted: {why}")
                continue
            if not verdict.alive:
                try:
                    record = self.job_store.take_over(record.job_name, self.run_id,
                                                      record.run_id)
                except IllegalTransitionError:
                    continue  # it ended, or another run took it over: look again
                self.context.log.warning(f"job {record.job_name}: its owner is dead "
                                         f"({verdict.reason}); this run adopts it")
            self.context.log.info(
                f"adopting job {record.job_name} (attempt {record.attempt}, owned by run "
                f"{record.run_id}), {description['ProcessingJobStatus']}"
            )
            description = self.jobs.wait(
                record.job_name, self.context.log, self._on_status(record.job_name),
                stop_on_interrupt=record.run_id == self.run_id)
            return JobOutcome(self.job_store.get(record.job_name) or record, description, True)

    def run_new_attempt(
        self, name_parts: tuple[str, ...], build_request: Callable[[str], dict]
    ) -> JobOutcome:
        """Record attempt N, build its request, submit it and wait for it to end.

        If another run records an attempt first, that attempt is adopted instead.
        """
        try:
            record = self.job_store.create_attempt(
                self.asset_name, self.partition_key,
                lambda attempt: processing_job_name(self.processing.job_name_prefix, *name_parts,
                                                    attempt=attempt),
                self.run_id, self.processing.backend_name,
            )
        except JobInFlightError as exc:
            self.context.log.info(f"{exc}: another run started it; adopting it")
            adopted = self.finish_in_flight()
            if adopted is None:
                raise dg.Failure(f"{exc}, then vanished; materialize the partition again") \
                    from exc
            return adopted
        self.context.log.info(f"attempt {record.attempt}: submitting job {record.job_name}")
        with self._failing_record(record.job_name, "submission failed"):
            request = build_request(record.job_name)
            self._admit_instances(record.job_name, request)
            if not self.jobs.submit(request, self.context.log):
                existing = self.jobs.describe(record.job_name)
                if existing is None:
                    raise dg.Failure(f"the backend refused job {record.job_name} as existing "
                                     "(ResourceInUse) but does not describe it; materialize "
                                     "the partition again")
                if existing.get("ProcessingOutputConfig") != request["ProcessingOutputConfig"]:
                    raise dg.Failure(
                        f"a different processing job named {record.job_name} already exists; "
                        "set a distinct job_name_prefix for this deployment",
                        allow_retries=False,
                    )
                self.context.log.info(f"job {record.job_name} already existed: adopting it")
        description = self.jobs.wait(record.job_name, self.context.log,
                                     self._on_status(record.job_name))
        return JobOutcome(self.job_store.get(record.job_name) or record, description, False)

    def _admit_instances(self, job_name: str, request: dict) -> None:
        """Wait until the job's instances fit the instance quota of their type.

        Only for types listed in ``processing.instance_quotas`` (others are not
        admission-controlled). The reservation is the job's from here on: the job
        store releases it when the job's record reaches a terminal status, which
        ``_on_status`` and ``_failing_record`` record (so a failed or interrupted
        submission releases it too), and the reaper releases those of dead owners.
        Waiting longer than ``quota_wait_seconds`` fails the step as "quota wait
        exhausted", not retried, like ``ResourceLimitExceeded`` does.
        """
        cluster = request["ProcessingResources"]["ClusterConfig"]
        instance_type, count = cluster["InstanceType"], cluster["InstanceCount"]
        quota = self.processing.instance_quotas.get(instance_type)
        if quota is None:
            return
        asked_at = time.monotonic()
        try:
            admission = wait_for_instances(
                self.job_store, job_name, self.run_id, instance_type, count, quota,
                # a poll renews the ticket: keep it well inside the ticket's lease
                poll_seconds=min(self.processing.poll_interval_seconds,
                                 self.job_store.lease_seconds / 4),
                timeout_seconds=self.processing.quota_wait_seconds, log=self.context.log)
        except RequestExceedsQuotaError as exc:
            raise dg.Failure(f"job {job_name}: {exc}. {CONFIGURATION.describe()}",
                             allow_retries=False) from exc
        except InstanceQuotaWaitExhausted as exc:
            raise dg.Failure(f"{exc}. {QUOTA_EXHAUSTED.describe()}",
                             allow_retries=False) from exc
        self.context.log.info(
            f"job {job_name}: admitted {count} {instance_type} after "
            f"{time.monotonic() - asked_at:.0f}s (quota {quota}, in use with this job "
            f"{admission.in_use})")

    @contextmanager
    def _failing_record(self, job_name: str, what: str) -> Iterator[None]:
        """Close the record as Failed if the block raises; API and permission errors
        become a ``dg.Failure`` that says whether a retry can help."""
        try:
            yield
        except (ClientError, ParamValidationError, PermissionError) as exc:
            failure = classify_exception(exc)
            self._record(job_name, FAILED, f"{what}: {exc}")
            raise dg.Failure(f"job {job_name}: {what}: {exc}. {failure.describe()}",
                             allow_retries=failure.retryable) from exc
        except BaseException as exc:
            self._record(job_name, FAILED, f"{what}: {exc}")
            raise

    def _on_status(self, job_name: str) -> Callable[[str, dict], None]:
        def record_status(status: str, description: dict) -> None:
            if status in (IN_PROGRESS, STOPPING) or status in TERMINAL:
                # a terminal status also releases the job's instances (JobStore.transition)
                self._record(job_name, status, description.get("FailureReason"))

        return record_status

    def _record(self, job_name: str, status: str, reason: str | None = None) -> None:
        record_status(self.job_store, job_name, status, reason, self.context.log)


def record_status(job_store: AttemptStore, job_name: str, status: str, reason: str | None,
                  log) -> None:
    """Move a job's record to ``status`` unless it is there already; a move the state
    machine forbids (someone recorded a later status first) is logged, not raised."""
    current = job_store.get(job_name)
    if current is None or current.status == status:
        return
    try:
        job_store.transition(job_name, status, failure_reason=reason)
    except IllegalTransitionError as exc:
        log.warning(f"job store not updated: {exc}")
