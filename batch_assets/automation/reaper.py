"""The reaper: nothing waits on a dead process.

A run worker killed by SIGKILL (OOM killer, evicted pod, closed laptop) leaves
its Dagster run STARTED and its pool slot taken, so every later run of any
partition waits behind it; and it leaves its job-store records in flight while
the processing job it submitted goes on and ends unobserved. ``reap`` repairs
both, and ``orphan_reaper`` (a sensor, on by default) calls it every 30 s:

1. a started run whose worker process is gone (``owner_liveness``) is reported
   failed, its pool slots are freed, and its partition is requested again: that
   run adopts the job the dead run left (or its finished result), never a twin;
2. an in-flight record whose owner is dead is brought in line with the backend:
   the job's terminal status is recorded, and a record of a job that was never
   submitted is closed as Failed (either releases the job's instances);
3. instance reservations (``processing.instance_quotas``) that nobody will
   release are released: those whose job is no longer in flight (a crash between
   recording the end and the release) or has no record. A dead owner's request
   that never reached the backend (waiting, or admitted but not submitted) is
   released in step 2, when its record is closed as Failed; a dead owner's job
   that still runs keeps its instances, which it really uses, until the backend
   reports its end (step 2 again).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from batch_assets.assets.trained_model import ASSET_NAME as TRAINED_MODEL
from batch_assets.automation.jobs import (
    SCORE_JOB,
    TRAIN_JOB,
    AssetJob,
    score_predictions_job,
    train_models_job,
)
from batch_assets.jobs.job_runner import record_status
from batch_assets.jobs.owner_liveness import job_owner_verdict, run_worker_verdict
from batch_assets.planning.scoring_groups import model_of
from batch_assets.registry import Registry
from resources.job_status import FAILED, TERMINAL
from resources.job_store import JobStore
from resources.processing import ProcessingBackend, ProcessingJobs
from resources.storage import ObjectStorage

REAPED_TAG = "batch/reaped_run"
PARTITION_TAG = "dagster/partition"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def _ours(key: dg.AssetKey) -> bool:
    return key == dg.AssetKey(TRAINED_MODEL) or model_of(key) is not None


@dataclass
class ReapReport:
    failed_runs: dict[str, str] = field(default_factory=dict)  # run id -> why
    reconciled_jobs: dict[str, str] = field(default_factory=dict)  # job name -> new status
    rerun_requests: list[dg.RunRequest] = field(default_factory=list)
    not_rerun: dict[str, str] = field(default_factory=dict)  # run id -> why not
    released_reservations: dict[str, str] = field(default_factory=dict)  # job name -> why

    def summary(self) -> str:
        return (f"{len(self.failed_runs)} dead run(s) failed, {len(self.rerun_requests)} "
                f"partition(s) requested again, {len(self.reconciled_jobs)} job record(s) "
                f"reconciled, {len(self.released_reservations)} instance reservation(s) "
                "released")


def reap(instance: dg.DagsterInstance, job_store: JobStore, jobs: ProcessingJobs,
         registry: Registry, log: Any, instance_types: Iterable[str] = ()) -> ReapReport:
    """Fail dead runs (freeing their slots), request their partitions again, bring
    the records of jobs nobody watches in line with the backend, and release the
    instance reservations (of ``instance_types``) that nobody else will."""
    report = ReapReport()
    for run in instance.get_runs(filters=dg.RunsFilter(
            statuses=[dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING])):
        verdict = run_worker_verdict(instance, job_store, run)
        if verdict.alive:
            continue
        message = f"run worker died: {verdict.reason}. Failed by the orphan_reaper sensor."
        log.warning(f"run {run.run_id}: {message}")
        if run.status == dg.DagsterRunStatus.CANCELING:
            instance.report_run_canceled(run, message)
        else:
            instance.report_run_failed(run, message)
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        report.failed_runs[run.run_id] = verdict.reason
        if run.status == dg.DagsterRunStatus.STARTED:
            _request_again(instance, job_store, registry, run, report)
    for record in job_store.list_in_flight():
        verdict = job_owner_verdict(instance, job_store, record.run_id)
        if verdict.alive:
            continue
        status, reason = _backend_status(jobs, record.job_name, verdict.reason)
        if status in TERMINAL:
            record_status(job_store, record.job_name, status, reason, log)
            report.reconciled_jobs[record.job_name] = status
            log.info(f"job {record.job_name}: owner dead ({verdict.reason}); recorded {status}")
    for instance_type in instance_types:
        _release_orphaned_reservations(job_store, instance_type, log, report)
    return report


def _release_orphaned_reservations(job_store: JobStore, instance_type: str, log: Any,
                                   report: ReapReport) -> None:
    for reservation in job_store.reservations(instance_type, active_only=True):
        record = job_store.get(reservation.job_name)
        if record is None:
            why = "its job has no record"
        elif not record.in_flight:
            why = f"its job ended {record.status}"
        else:
            continue  # its job is in flight: released when the record is closed
        job_store.release_instances(reservation.job_name, f"reaped: {why}")
        report.released_reservations[reservation.job_name] = why
        log.info(f"job {reservation.job_name}: released {reservation.count} {instance_type} "
                 f"({why})")


def _backend_status(jobs: ProcessingJobs, job_name: str, owner_reason: str
                    ) -> tuple[str, str | None]:
    described = jobs.describe(job_name)
    if described is None:
        return FAILED, f"never submitted: {owner_reason}"
    return described["ProcessingJobStatus"], described.get("FailureReason")


def run_partition(run: dg.DagsterRun) -> str | None:
    """The one partition a run materializes: its ``dagster/partition`` tag, or a
    backfill run's range of one (``BackfillPolicy.multi_run(1)`` runs carry
    ``dagster/asset_partition_range_start`` = ``..._end`` instead)."""
    if run.tags.get(PARTITION_TAG):
        return run.tags[PARTITION_TAG]
    start, end = run.tags.get(RANGE_START_TAG), run.tags.get(RANGE_END_TAG)
    return start if start and start == end else None


def _request_again(instance: dg.DagsterInstance, job_store: JobStore, registry: Registry,
                   run: dg.DagsterRun, report: ReapReport) -> None:
    """Ask for the dead run's partition again, at most ``max_attempts`` times per partition."""
    partition = run_partition(run)
    assets = [key for key in (run.asset_selection or ()) if _ours(key)]
    if not partition or not assets:
        report.not_rerun[run.run_id] = "not a partition run of the pipeline's assets"
        return
    reaped_before = sum(1 for r in instance.get_runs(
        filters=dg.RunsFilter(tags={PARTITION_TAG: partition}), limit=500)
        if REAPED_TAG in r.tags)
    if reaped_before >= registry.max_attempts:
        report.not_rerun[run.run_id] = (f"{partition} was requested again {reaped_before} "
                                        "times after dead runs (max_attempts)")
        return
    report.rerun_requests.append(dg.RunRequest(
        run_key=f"reap/{run.run_id}", partition_key=partition, asset_selection=assets,
        job_name=TRAIN_JOB if dg.AssetKey(TRAINED_MODEL) in assets else SCORE_JOB,
        tags={REAPED_TAG: run.run_id},
    ))


def build_reaper_sensor(registry: Registry,
                        score_job: AssetJob | None = None,
                        train_job: AssetJob | None = None
                        ) -> dg.SensorDefinition:
    """Its requests are runs of ``score_predictions`` or ``train_models`` (by the dead
    run's assets), so they show under those jobs, not as ``__ASSET_JOB``."""
    score_job = score_job or score_predictions_job(registry)
    train_job = train_job or train_models_job()

    @dg.sensor(
        name="orphan_reaper",
        jobs=[score_job, train_job],
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Fails runs whose worker process died (freeing their pool slots), "
        "requests their partitions again (the new run adopts the job the dead run left), "
        "records the outcome of jobs whose owner died, and releases the instance "
        "reservations that no live run will release. On by default.",
    )
    def orphan_reaper(context: dg.SensorEvaluationContext, storage: ObjectStorage,
                      job_store: JobStore, processing: ProcessingBackend):
        report = reap(context.instance, job_store, processing.jobs(storage), registry,
                      context.log, instance_types=processing.instance_quotas)
        for run_id, why in report.not_rerun.items():
            context.log.info(f"dead run {run_id} not requested again: {why}")
        if report.rerun_requests:
            return dg.SensorResult(run_requests=report.rerun_requests)
        return dg.SkipReason(report.summary())

    return orphan_reaper
