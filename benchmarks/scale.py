"""``python -m benchmarks.scale``: a days x models backfill through Dagster, measured.

The issue's scale case: 100 days x 20 models (2,000 prediction partitions) with
tiny data, on the local runner, under an instance quota, launched as a backfill
from the asset graph would be (the UI's GraphQL mutation) against ``dagster dev``
(webserver + daemon, the default run launcher: one process per run). Reported:

* processing jobs launched: one per day for all 20 models (days x datasets), not
  one per model-day;
* peak instances in use against the quota (from the job store's admission
  timeline);
* wall time, and Dagster's overhead per job: each run's duration (Dagster's run
  start to end) minus its job's (the job record's start to end);
* every model-day materialized, every job Completed.

It trains one small scikit-learn model through the pipeline and registers it 20
times (copies of its bundle under 20 names): the models' compute is not what is
measured here. ``--days`` and ``--models`` scale it down for a quick look.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import dagster as dg

from batch_assets.definitions import build_definitions, local_resources
from batch_assets.dev.demo_data import DemoDataSpec, generate_demo_data
from batch_assets.planning.layout import model_prefix
from batch_assets.planning.model_pointer import (
    CurrentModel,
    read_current_model,
    write_current_model,
)
from benchmarks.dagster_dev import DagsterDev
from container.contract import METADATA_FILE
from resources.job_store import SQLiteJobStore
from resources.job_store.admission import peak_in_use

INSTANCE_TYPE = "ml.m5.large"
FEATURES = [f"f{i:02d}" for i in range(16)]


def _registry(days: list[str], models: int, instance_count: int) -> str:
    entries = [f'''
[[models]]
name = "m{i:03d}"
framework = "sklearn"
dataset = "customers"
training_data = "training/customers/"
label = "label"
key_columns = ["customer_id"]
features = {json.dumps(FEATURES)}
instance_type = "{INSTANCE_TYPE}"
instance_count = {instance_count}
quality_metric = "roc_auc"
quality_threshold = 0.5
''' for i in range(models)]
    return f'partitions_start_date = "{days[0]}"\nmax_attempts = 4\n' + "".join(entries)


def prepare(root: Path, days: list[str], models: int, instance_count: int,
            rows_per_file: int) -> Path:
    """Data for every day, one trained model, its bundle registered ``models`` times."""
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    registry = root / "models.toml"
    registry.write_text(_registry(days, models, instance_count))
    resources = local_resources(str(root / ".data"))
    storage = resources["storage"]
    generate_demo_data(storage, DemoDataSpec(days=tuple(days), files_per_day=2,
                                             rows_per_file=rows_per_file,
                                             training_rows=4_000))
    build_definitions(registry, resources).resolve_job_def("train_models").execute_in_process(
        partition_key="m000", instance=dg.DagsterInstance.ephemeral(),
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}})
    first = read_current_model(storage, "m000")
    source = storage.root_path / first.prefix
    for i in range(1, models):
        name = f"m{i:03d}"
        target = storage.root_path / model_prefix(name, first.version)
        shutil.copytree(source, target)
        metadata = json.loads((target / METADATA_FILE).read_text())
        (target / METADATA_FILE).write_text(json.dumps({**metadata, "name": name}))
        write_current_model(storage, CurrentModel(
            model=name, version=first.version, prefix=model_prefix(name, first.version),
            framework=first.framework, metrics=first.metrics, job_name=first.job_name,
            trained_at=first.trained_at))
    return registry


def run_backfill(root: Path, registry: Path, days: list[str], models: int, quota: int,
                 pool_limit: int, timeout: float) -> tuple[float, str]:
    """Serve the deployment with ``dagster dev``, launch the backfill, wait; returns
    (wall seconds from launch to the backfill's end, its status)."""
    env = {"BATCH_MODEL_REGISTRY": str(registry),
           "BATCH_INSTANCE_QUOTAS": f"{INSTANCE_TYPE}={quota}"}
    with DagsterDev(root, env, pool_limit=pool_limit) as dev:
        started = time.monotonic()
        backfill = dev.launch_backfill([["predictions", f"m{i:03d}"] for i in range(models)],
                                       days)
        status = dev.wait_for_backfill(backfill, timeout)
        return time.monotonic() - started, status


def report(root: Path, days: list[str], models: int, quota: int, wall: float,
           status: str) -> dict:
    store = SQLiteJobStore(path=str(root / ".data" / "jobs.sqlite3"))
    records = [r for day in days for r in store.attempts("score_customers", day)]
    peak, _ = peak_in_use(store.reservations(INSTANCE_TYPE))
    instance = dg.DagsterInstance.from_config(str(root / "dagster_home"))
    try:
        runs = instance.get_runs(limit=len(days) * 4)

        overheads = []
        for run in runs:
            stats = instance.get_run_stats(run.run_id)
            jobs = [r for r in records if r.run_id == run.run_id and r.ended_at]
            if not (stats.start_time and stats.end_time and jobs):
                continue
            job_seconds = sum(r.ended_at - r.started_at for r in jobs if r.started_at)
            overheads.append(stats.end_time - stats.start_time - job_seconds)
        materialized = sum(
            len(instance.get_materialized_partitions(dg.AssetKey(["predictions",
                                                                  f"m{i:03d}"])))
            for i in range(models))
    finally:
        instance.dispose()
    job_seconds = [r.ended_at - r.started_at for r in records
                   if r.started_at and r.ended_at]
    return {
        "days": len(days), "models": models, "prediction_partitions": len(days) * models,
        "backfill_status": status, "wall_seconds": round(wall, 1),
        "processing_jobs": len(records),
        "jobs_completed": sum(r.status == "Completed" for r in records),
        "partitions_materialized": materialized,
        "peak_instances_in_use": peak, "instance_quota": quota,
        "median_job_seconds": round(statistics.median(job_seconds), 2) if job_seconds else None,
        "median_dagster_overhead_per_job_seconds":
            round(statistics.median(overheads), 2) if overheads else None,
        "runs_measured": len(overheads),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=100)
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--instance-count", type=int, default=2,
                        help="instances per job")
    parser.add_argument("--quota", type=int, default=4,
                        help=f"instance quota of {INSTANCE_TYPE} (admission)")
    parser.add_argument("--pool-limit", type=int, default=4,
                        help="Dagster pool sagemaker_processing limit (jobs in flight)")
    parser.add_argument("--rows-per-file", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=7200)
    parser.add_argument("--work-dir", type=Path, default=Path(".data/bench/scale"))
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    root = args.work_dir.resolve()
    days = [(date(2026, 1, 1) + timedelta(days=i)).isoformat() for i in range(args.days)]
    registry = prepare(root, days, args.models, args.instance_count, args.rows_per_file)
    wall, status = run_backfill(root, registry, days, args.models, args.quota,
                                args.pool_limit, args.timeout)
    figures = report(root, days, args.models, args.quota, wall, status)
    lines = [f"scale: backfill of {args.days} days x {args.models} models on the local runner "
             f"({args.instance_count} instances per job, quota {args.quota}, pool limit "
             f"{args.pool_limit})", ""] + [f"{k:<42} {v}" for k, v in figures.items()]
    print("\n".join(lines))
    args.results.mkdir(parents=True, exist_ok=True)
    name = f"scale-{args.days}x{args.models}"
    (args.results / f"{name}.txt").write_text("\n".join(lines) + "\n")
    (args.results / f"{name}.json").write_text(json.dumps(figures, indent=2))
    ok = (status in ("COMPLETED", "COMPLETED_SUCCESS")
          and figures["partitions_materialized"] == args.days * args.models
          and figures["peak_instances_in_use"] <= args.quota)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
