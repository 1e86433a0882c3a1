"""``python -m benchmarks.small_files``: the same rows as many small files vs a few big ones.

A day delivered as thousands of tiny files must not cost much more than the same
rows in a few files. This runs, in one process and one run, real processing jobs
on the local runner (``LocalProcessing``, ``LocalProcessingClient``:
staging, instance processes running ``python -m container infer``, continuous
upload) over the same 300,000 rows (W2's features: 40 float32 + an int64 id, 1%
missing) delivered as 8 files and as 3,000 files of 100 rows, scored by W2's model
(imputer + scaler + logistic regression, folded). The job has the demo's 2 instances.

For each layout it reports the job seconds (start to end as ``describe`` reports
them), the wall seconds from submit until the job is seen terminal, the CPU seconds
of the runner and its instances (steadier than seconds on a shared machine), and
the job's phases from the runner's and the instances' logs: staging (job start
until the instances are launched), start-up (launch until the first instance
scores), scoring (the slowest instance's scoring time) and the tail (last instance
done until the job ends: the last upload and exit). It also times the Dagster side of a day as
``batch_assets.assets.predictions`` does it: listing the inputs, ``tally_partition``
before (nothing done) and after (every manifest and output footer read), and
writing the job plan, input manifest and scoring plan.

Repeats alternate the layouts (medians counted), so machine noise hits both alike;
every repeat's outputs are checked against the few-files outputs (every id once,
the same predictions). Target: many/few job seconds <= 1.5x.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import shutil
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from batch_assets.assets.scoring_job import PendingModel, ScoringJob
from batch_assets.jobs.job_requests import JobResources
from batch_assets.planning.layout import data_prefix, model_prefix, predictions_prefix
from batch_assets.planning.tally import list_inputs, tally_partition
from batch_assets.registry import InferenceSettings, ModelSpec
from benchmarks.workloads import (
    FEATURES,
    feature_block,
    feature_table,
    prepare_model,
    workload_specs,
)
from resources.job_status import COMPLETED, TERMINAL
from resources.local_processing.client import _children as local_supervisors
from resources.processing import LocalProcessing
from resources.storage import LocalBucketStorage

ROWS = 300_000
LAYOUTS = {"few": 8, "many": 3_000}
DAY = "2026-01-01"
MODEL = "bench_linear"
VERSION = "bench"
INSTANCES = 2
TARGET = 1.5
SEED = 20261129


@dataclass
class Run:
    """One job over one layout: its seconds, per phase, and the Dagster-side costs."""

    layout: str
    files: int
    job_seconds: float
    wall_seconds: float
    cpu_seconds: float  # supervisor + instances: steadier than seconds on a busy machine
    phases: dict[str, float] = field(default_factory=dict)
    dagster: dict[str, float] = field(default_factory=dict)
    code: str = "after"  # "before": the runner and container of --before


def write_layout(storage: LocalBucketStorage, dataset: str, files: int) -> None:
    """``ROWS`` rows (the same ones for every layout: one seeded generator, ids 0..N-1)
    as ``files`` equal files, each one row group, under the dataset's day."""
    prefix = data_prefix(dataset, DAY)
    marker = storage.root_path / prefix / "_SUCCESS"
    if marker.is_file():
        return
    block = feature_block(np.random.default_rng(SEED), ROWS)
    table = feature_table(np.arange(ROWS, dtype=np.int64), block)
    per_file = ROWS // files
    folder = storage.root_path / prefix
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(files):
        pq.write_table(table.slice(index * per_file, per_file),
                       folder / f"part-{index:05d}.parquet", use_dictionary=False)
    marker.write_bytes(b"")


def upload_model(storage: LocalBucketStorage, bundle: Path) -> None:
    for path in sorted(bundle.iterdir()):
        if path.is_file() and not path.name.startswith("_"):
            storage.upload_file(path, model_prefix(MODEL, VERSION) + path.name)


def model_spec(dataset: str) -> ModelSpec:
    return ModelSpec(name=MODEL, framework="sklearn", dataset=dataset, training_data="",
                     label="", key_columns=("id",), features=tuple(FEATURES),
                     instance_type="ml.m5.xlarge", instance_count=INSTANCES,
                     quality_metric="roc_auc", quality_threshold=0.5,
                     inference=InferenceSettings())


@contextlib.contextmanager
def code_tree(folder: Path | None) -> Iterator[None]:
    """Jobs submitted inside run the runner and the container from ``folder`` (a
    checkout of another commit; ``None``: this one). ``python -m`` puts the working
    directory first on the path, so both it and ``PYTHONPATH`` are switched."""
    if folder is None:
        yield
        return
    saved_cwd, saved_path = Path.cwd(), os.environ.get("PYTHONPATH")
    os.chdir(folder)
    os.environ["PYTHONPATH"] = str(folder)
    try:
        yield
    finally:
        os.chdir(saved_cwd)
        if saved_path is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved_path


def run_job(storage: LocalBucketStorage, processing: LocalProcessing, layout: str,
            repeat: int, code: str = "after", code_dir: Path | None = None) -> Run:
    """Score the layout's day as the predictions step does: list, tally, write the
    plan and manifests (the step's own ``ScoringJob``), one job, tally again."""
    dataset = f"small_files_{layout}"
    shutil.rmtree(storage.root_path / predictions_prefix(MODEL, DAY), ignore_errors=True)
    dagster: dict[str, float] = {}
    started = time.perf_counter()
    inputs = list_inputs(storage, dataset, DAY)
    dagster["list inputs"] = time.perf_counter() - started
    mark = time.perf_counter()
    before = tally_partition(storage, MODEL, DAY, inputs, VERSION)
    dagster["tally before"] = time.perf_counter() - mark
    assert len(before.pending) == len(inputs)
    mark = time.perf_counter()
    job_name = f"small-files-{code}-{layout}-{repeat}-{int(time.time() * 1000)}"
    job = ScoringJob(f"score_{dataset}", dataset, DAY,
                     (PendingModel(model_spec(dataset), VERSION, before),), INSTANCES,
                     run_id="small-files-benchmark")
    request = job.request(JobResources(processing, storage), job_name)
    dagster["write plan + manifests"] = time.perf_counter() - mark
    jobs = processing.jobs(storage)
    cpu_before = _children_cpu()
    submitted = time.perf_counter()
    with code_tree(code_dir):
        jobs.submit(request)
    while True:
        described = jobs.client.describe_processing_job(ProcessingJobName=job_name)
        if described["ProcessingJobStatus"] in TERMINAL:
            break
        time.sleep(0.05)
    wall = time.perf_counter() - submitted
    local_supervisors[job_name].wait()  # reaped: its and its instances' CPU time counts
    cpu = _children_cpu() - cpu_before
    if described["ProcessingJobStatus"] != COMPLETED:
        raise RuntimeError(f"job {job_name} {described['ProcessingJobStatus']}: "
                           f"{described.get('FailureReason')}")
    mark = time.perf_counter()
    after = tally_partition(storage, MODEL, DAY, inputs, VERSION)
    dagster["tally after"] = time.perf_counter() - mark
    if not after.complete or after.rows_out != ROWS:
        raise RuntimeError(f"{layout}: {len(after.pending)} files not done, "
                           f"{after.rows_out} rows out; e.g. {list(after.problems.items())[:3]}")
    start = described["ProcessingStartTime"].timestamp()
    end = described["ProcessingEndTime"].timestamp()
    job_dir = jobs.client.job_dir(job_name)
    return Run(layout, len(inputs), end - start, wall, cpu, phases(job_dir, start, end),
               dagster, code)


def _children_cpu() -> float:
    """User + system seconds of the reaped child processes (supervisor, instances)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")
_SCORED = re.compile(r"scored \d+ rows in ([\d.]+) s")


def _stamped(path: Path, needle: str | re.Pattern) -> list[tuple[float, str]]:
    found = []
    for line in path.read_text(errors="replace").splitlines():
        stamp = _STAMP.match(line)
        hit = needle.search(line) if isinstance(needle, re.Pattern) else needle in line
        if stamp and hit:
            found.append((datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S,%f")
                          .timestamp(), line))
    return found


def phases(job_dir: Path, start: float, end: float) -> dict[str, float]:
    """The job's phases from its logs (millisecond stamps, local time)."""
    launched = _stamped(job_dir / "supervisor.log", "started ")[0][0]
    scoring_starts, scoring_ends, scoring = [], [], []
    for log in sorted((job_dir / "logs").glob("*.log")):
        for stamp, line in _stamped(log, _SCORED):
            seconds = float(_SCORED.search(line).group(1))
            scoring_starts.append(stamp - seconds)
            scoring_ends.append(stamp)
            scoring.append(seconds)
    return {
        "staging": launched - start,
        "start-up": min(scoring_starts) - launched,
        "scoring": max(scoring),
        "tail": end - max(scoring_ends),
    }


def outputs(storage: LocalBucketStorage) -> pa.Table:
    """Every output row of the day, sorted by id."""
    folder = storage.root_path / predictions_prefix(MODEL, DAY)
    table = pa.concat_tables(pq.read_table(p) for p in sorted(folder.glob("*.parquet")))
    return table.sort_by("id")


def _median(runs: list[Run], pick) -> float:
    return statistics.median(pick(r) for r in runs)


def report(runs: list[Run], repeats: int) -> list[str]:
    lines = [f"small files: {ROWS:,} rows, W2 model, local runner with {INSTANCES} instances, "
             f"medians of {repeats} (layouts alternated)"]
    codes = list(dict.fromkeys(r.code for r in runs))
    for code in codes:
        lines += ["", *_table_of([r for r in runs if r.code == code], code)]
    if len(codes) == 2:
        many = {c: _median([r for r in runs if r.code == c and r.layout == "many"],
                           lambda r: r.job_seconds) for c in codes}
        lines += ["", f"3,000-file job: {many['before']:.2f} s before, {many['after']:.2f} s "
                      f"after ({many['before'] / many['after']:.2f}x faster)"]
    return lines


def _table_of(runs: list[Run], code: str) -> list[str]:
    by_layout = {name: [r for r in runs if r.layout == name] for name in LAYOUTS}
    few, many = by_layout["few"], by_layout["many"]
    ratio = _median(many, lambda r: r.job_seconds) / _median(few, lambda r: r.job_seconds)
    cpu_ratio = _median(many, lambda r: r.cpu_seconds) / _median(few, lambda r: r.cpu_seconds)
    titles = [f"{name} ({by_layout[name][0].files} files)" for name in LAYOUTS]
    lines = [f"{code + ':':<32}" + "".join(f"{title:>22}" for title in titles)]
    rows = [("job seconds", lambda r: r.job_seconds), ("wall seconds", lambda r: r.wall_seconds),
            ("cpu seconds (runner + instances)", lambda r: r.cpu_seconds)]
    rows += [(f"  {p}", lambda r, p=p: r.phases[p]) for p in few[0].phases]
    rows += [(f"dagster: {p}", lambda r, p=p: r.dagster[p]) for p in few[0].dagster]
    for label, pick in rows:
        lines.append(f"{label:<32}" + "".join(f"{_median(by_layout[n], pick):>22.2f}"
                                              for n in LAYOUTS))
    lines += [f"{code}: many/few job seconds {ratio:.2f}x (target <= {TARGET}x: "
              f"{'met' if ratio <= TARGET else 'MISSED'}), cpu seconds {cpu_ratio:.2f}x; "
              "job seconds of the runs, many: "
              + " ".join(f"{r.job_seconds:.2f}" for r in many)
              + "; few: " + " ".join(f"{r.job_seconds:.2f}" for r in few)]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.small_files",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work-dir", type=Path, default=Path(".data/bench"))
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--results-name", default="small-files")
    parser.add_argument("--before", type=Path, default=None,
                        help="a checkout of an earlier commit (e.g. `git worktree add "
                             "/tmp/before <commit>`): its runner and container score too, "
                             "alternated with this one's, for before/after in one run")
    args = parser.parse_args(argv)
    work_dir = args.work_dir.resolve()
    (spec,) = [s for s in workload_specs("short") if s.name == "W2"]
    model_dir = prepare_model(spec, work_dir)
    root = work_dir / "small_files"
    storage = LocalBucketStorage(root=str(root / "bucket"))
    for layout, files in LAYOUTS.items():
        write_layout(storage, f"small_files_{layout}", files)
    upload_model(storage, model_dir)
    shutil.rmtree(root / "processing", ignore_errors=True)
    processing = LocalProcessing(work_dir=str(root / "processing"))
    variants = [("after", None)]
    if args.before is not None:
        variants.insert(0, ("before", args.before.resolve()))
    run_job(storage, processing, "few", 0)  # warm-up: page cache, imports; not counted
    expected = outputs(storage)
    runs = []
    for repeat in range(1, args.repeats + 1):
        for code, code_dir in variants:
            for layout in (LAYOUTS if repeat % 2 else reversed(list(LAYOUTS))):
                runs.append(run_job(storage, processing, layout, repeat, code, code_dir))
                if not outputs(storage).equals(expected):
                    raise RuntimeError(f"{code} {layout}: outputs differ from the few-files "
                                       "outputs")
                run = runs[-1]
                print(f"repeat {repeat} {code} {layout}: job {run.job_seconds:.2f} s, "
                      f"wall {run.wall_seconds:.2f} s, cpu {run.cpu_seconds:.2f} s, "
                      + ", ".join(f"{k} {v:.2f}" for k, v in run.phases.items()), flush=True)
    lines = report(runs, args.repeats)
    print("\n".join(lines))
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / f"{args.results_name}.txt").write_text("\n".join(lines) + "\n")
    (args.results / f"{args.results_name}.json").write_text(json.dumps(
        [r.__dict__ for r in runs], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
