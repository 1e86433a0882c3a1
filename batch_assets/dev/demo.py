"""``python -m batch_assets.dev.demo``: the whole pipeline on the embedded default.

Generates the demo data set (kept if already there), trains every registered
model that has no trained version yet, scores each demo day through Dagster's
``score_predictions`` job (one run and one processing job per day for all the
models: each file is read once and scored by every model), and prints a summary. A second run
finds everything done and does no compute.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from batch_assets.definitions import build_definitions, local_resources
from batch_assets.dev.demo_data import DemoDataSpec, generate_demo_data
from batch_assets.planning.layout import current_model_key
from batch_assets.planning.scoring_groups import model_of, prediction_key
from batch_assets.registry import (
    DEFAULT_REGISTRY_PATH,
    RegistryError,
    UnknownModelError,
    load_registry,
)

# The demo's (and `make dev`'s) Dagster instance settings: one processing job at a
# time locally, since a job uses every core.
LOCAL_INSTANCE_CONFIG = Path(__file__).parent.parent / "local_instance.yaml"

# Dagster's console logger at INFO: job progress without every engine event.
QUIET = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


@dataclass
class DemoSummary:
    partitions: int = 0
    partitions_with_work: int = 0
    files: int = 0
    files_scored_now: int = 0
    rows: int = 0
    rows_scored_now: int = 0
    job_seconds: float = 0.0
    jobs: set[str] = field(default_factory=set)
    wall_seconds: float = 0.0
    models_trained: list[str] = field(default_factory=list)
    outputs: str = ""
    job_store: str = ""

    def lines(self) -> list[str]:
        rate = self.rows_scored_now / self.job_seconds if self.job_seconds else 0.0
        return [
            f"partitions scored   {self.partitions} ({self.partitions_with_work} ran a job, "
            f"{self.partitions - self.partitions_with_work} were already complete)",
            f"processing jobs     {len(self.jobs)} (one per day for all models of the dataset)",
            f"models trained      {', '.join(self.models_trained) or 'none (already trained)'}",
            f"files               {self.files} ({self.files_scored_now} scored in this run)",
            f"rows                {self.rows:,} ({self.rows_scored_now:,} scored in this run)",
            f"seconds             {self.wall_seconds:.1f} wall, {self.job_seconds:.1f} in "
            "scoring jobs",
            f"rows/s              {rate:,.0f} (rows scored in this run / scoring job seconds)",
            f"outputs             {self.outputs}",
            f"job records         {self.job_store}",
        ]


def run_demo(data_dir: Path, registry_path: Path = DEFAULT_REGISTRY_PATH,
             data_spec: DemoDataSpec | None = None,
             instance: dg.DagsterInstance | None = None,
             models: list[str] | None = None) -> DemoSummary:
    """Run the demo; ``models`` limits it to some registered models (default: all)."""
    started = time.monotonic()
    data_spec = data_spec or DemoDataSpec()
    resources = local_resources(str(data_dir))
    storage = resources["storage"]
    registry = load_registry(registry_path)
    selected = [registry.get(name).name for name in models] if models else registry.model_names
    generated = generate_demo_data(storage, data_spec)
    if generated["files"]:
        print(f"generated {generated['files']} files, {generated['rows']:,} rows "
              f"for {generated['days']} days under {storage.uri('data/')}")
    defs = build_definitions(registry_path, resources)
    summary = DemoSummary(outputs=f"{storage.uri('predictions/')} -> {storage.root_path}",
                          job_store=str(Path(resources["job_store"].path).resolve()))
    instance = instance or dg.DagsterInstance.get()
    train_job = defs.resolve_job_def("train_models")
    score_job = defs.resolve_job_def("score_predictions")
    for model in selected:
        if storage.exists(current_model_key(model)):
            continue
        print(f"training {model} ...")
        train_job.execute_in_process(partition_key=model, instance=instance,
                                     run_config=QUIET)
        summary.models_trained.append(model)
    keys = [prediction_key(model) for model in selected
            if registry.get(model).dataset == data_spec.dataset]
    for day in data_spec.days:
        print(f"scoring {day} with {', '.join(model_of(k) for k in keys)} ...")
        result = score_job.execute_in_process(partition_key=day, instance=instance,
                                              asset_selection=keys, run_config=QUIET)
        _add(summary, result)
    summary.wall_seconds = time.monotonic() - started
    return summary


def _add(summary: DemoSummary, result: dg.ExecuteInProcessResult) -> None:
    """Add one day's run: per model its partition's figures; job seconds once per job."""
    for event in result.get_asset_materialization_events():
        meta = {k: v.value for k, v in event.materialization.metadata.items()}
        summary.partitions += 1
        summary.partitions_with_work += 0 if meta["nothing_to_do"] else 1
        summary.files += meta["input_files"]
        summary.files_scored_now += meta["files_scored_now"]
        summary.rows += meta["rows"]
        summary.rows_scored_now += meta["rows_scored_now"]
        job = meta.get("job_name")
        if job and job not in summary.jobs and meta["files_scored_now"]:
            summary.jobs.add(job)
            summary.job_seconds += meta["seconds"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m batch_assets.dev.demo", description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=Path(".data"),
                        help="folder for the local bucket, job store and job folders")
    parser.add_argument("--registry", type=Path, default=DEFAULT_REGISTRY_PATH,
                        help="model registry file")
    parser.add_argument("--models", default="",
                        help="comma-separated model names to run (default: every registered one)")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    warnings.filterwarnings("ignore", category=dg.PreviewWarning)
    os.environ.setdefault("DAGSTER_HOME", str((args.data_dir / "dagster_home").resolve()))
    dagster_home = Path(os.environ["DAGSTER_HOME"])
    dagster_home.mkdir(parents=True, exist_ok=True)
    if not (dagster_home / "dagster.yaml").exists():
        (dagster_home / "dagster.yaml").write_text(LOCAL_INSTANCE_CONFIG.read_text())
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    try:
        summary = run_demo(args.data_dir, args.registry, models=models or None)
    except (UnknownModelError, RegistryError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n== batch inference demo: summary ==")
    print("\n".join(summary.lines()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
