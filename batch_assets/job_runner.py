"""Run one processing job for one asset partition, recorded in the job store.

The steps every processing-backed asset shares: finish (adopt) an attempt that
is still in flight for the partition, or record a new attempt, submit it, wait,
and keep the job store in step with what the backend reports.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import dagster as dg
from botocore.exceptions import ClientError

from container.errors import BAD_INPUT_PREFIX
from resources.job_store import (
    FAILED,
    IN_PROGRESS,
    STOPPING,
    TERMINAL,
    IllegalTransitionError,
    JobInFlightError,
    JobRecord,
    JobStore,
)
from resources.processing import SageMakerProcessing
from resources.processing_request import processing_job_name
from resources.storage import ObjectStorage


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
        """False when the container reported bad input: rerunning cannot fix the data."""
        return BAD_INPUT_PREFIX not in self.failure_reason

    def failure_summary(self, kind: str, links: dict[str, str]) -> str:
        """'<kind> job <name> Failed: <reason> (see <console URL or job folder>)'."""
        where = links.get("console_url") or links.get("job_dir")
        see = f" (see {where})" if where else ""
        return f"{kind} job {self.record.job_name} {self.status}: {self.failure_reason}{see}"


def link_metadata(links: dict[str, str]) -> dict:
    """Console and log links as URL metadata; local job folders as paths."""
    return {
        name: dg.MetadataValue.url(target) if target.startswith("https://")
        else dg.MetadataValue.path(target)
        for name, target in links.items()
    }


class PartitionJobRunner:
    def __init__(
        self,
        context: dg.AssetExecutionContext,
        asset_name: str,
        partition_key: str,
        storage: ObjectStorage,
        job_store: JobStore,
        processing: SageMakerProcessing,
    ) -> None:
        self.context = context
        self.asset_name = asset_name
        self.partition_key = partition_key
        self.job_store = job_store
        self.processing = processing
        self.client = processing.client(storage)

    def finish_in_flight(self) -> JobOutcome | None:
        """Wait for an attempt another run left in flight, instead of starting a twin."""
        record = self.job_store.in_flight(self.asset_name, self.partition_key)
        if record is None:
            return None
        try:
            self.client.describe_processing_job(ProcessingJobName=record.job_name)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ValidationException":
                raise
            owner = self.context.instance.get_run_by_id(record.run_id)
            if owner is not None and not owner.is_finished:
                raise dg.Failure(
                    f"run {record.run_id} is submitting job {record.job_name} for this "
                    "partition right now; this run leaves the partition to it",
                    allow_retries=False,
                ) from exc
            self._record(record.job_name, FAILED,
                         "never submitted: the run that recorded it ended before submitting")
            return None
        self.context.log.info(
            f"adopting job {record.job_name} (attempt {record.attempt}, started by run "
            f"{record.run_id}), still {record.status}"
        )
        description = self.processing.wait(self.client, record.job_name, self.context.log,
                                           self._on_status(record.job_name))
        return JobOutcome(self.job_store.get(record.job_name) or record, description, True)

    def run_new_attempt(
        self, name_parts: tuple[str, ...], build_request: Callable[[str], dict]
    ) -> JobOutcome:
        """Record attempt N, build its request, submit it and wait for it to end."""
        try:
            record = self.job_store.create_attempt(
                self.asset_name, self.partition_key,
                lambda attempt: processing_job_name(self.processing.job_name_prefix, *name_parts,
                                                    attempt=attempt),
                self.context.run.run_id, self.processing.backend_name,
            )
        except JobInFlightError as exc:
            raise dg.Failure(
                f"{exc}. Another run is processing this partition; wait for it or stop job "
                f"{exc.existing.job_name}.",
            ) from exc
        self.context.log.info(f"attempt {record.attempt}: submitting job {record.job_name}")
        try:
            request = build_request(record.job_name)
            if not self.processing.submit(self.client, request, self.context.log):
                existing = self.client.describe_processing_job(ProcessingJobName=record.job_name)
                if existing.get("ProcessingOutputConfig") != request["ProcessingOutputConfig"]:
                    raise dg.Failure(
                        f"a different processing job named {record.job_name} already exists; "
                        "set a distinct job_name_prefix for this deployment"
                    )
                self.context.log.info(f"job {record.job_name} already existed: adopting it")
        except BaseException as exc:
            self._record(record.job_name, FAILED, f"submission failed: {exc}")
            raise
        description = self.processing.wait(self.client, record.job_name, self.context.log,
                                           self._on_status(record.job_name))
        return JobOutcome(self.job_store.get(record.job_name) or record, description, False)

    def _on_status(self, job_name: str) -> Callable[[str, dict], None]:
        def record_status(status: str, description: dict) -> None:
            if status in (IN_PROGRESS, STOPPING) or status in TERMINAL:
                self._record(job_name, status, description.get("FailureReason"))

        return record_status

    def _record(self, job_name: str, status: str, reason: str | None = None) -> None:
        current = self.job_store.get(job_name)
        if current is None or current.status == status:
            return
        try:
            self.job_store.transition(job_name, status, failure_reason=reason)
        except IllegalTransitionError as exc:
            self.context.log.warning(f"job store not updated: {exc}")
