"""``python -m benchmarks.multi_model``: K models in one pass vs K single-model jobs.

Many models scoring one dataset-day is the pipeline's main case. This measures, in
one run on the same files, the container's ``infer`` as ONE job scoring K models
(a ``ScoringPlan``: each row group read and decoded once, scored by every model)
against K jobs of one model each, run one after another as K processing jobs
would be (each pays its process start-up, model load, reads and decoding).

* linear: K = 1, 2, 4, 8 copies of the W2 model (scaler + logistic regression);
  target for K = 4: the one job at least 3x faster than the K jobs;
* trees: K = 4 copies of the W1 model (XGBoost 200 trees x depth 8); target at
  least 1.3x (the trees' compute is not shared, only start-up, reads and decoding).

Each copy is its own bundle with its own name, so the job writes K output folders;
every output of the one job must equal the single-model job's output of that model
(the run fails otherwise). Ratios, not absolute times, are the result: machines
here are shared and noisy.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from benchmarks.engines import lay_out_instance
from benchmarks.workloads import prepare, workload_specs
from container.contract import (
    CONFIG_INPUT,
    DATA_INPUT,
    METADATA_FILE,
    MODEL_INPUT,
    PREDICTIONS_OUTPUT,
    ROOT_ENV_VAR,
    SCORING_PLAN_FILE,
    PlannedModel,
    ScoringPlan,
    input_path,
    opt_ml_relative,
    output_path,
)
from container.environment import write_standalone_config

CASES = {"linear": ("W2", (1, 2, 4, 8)), "trees": ("W1", (4,))}
TARGETS = {("linear", 4): 3.0, ("trees", 4): 1.3}


@dataclass
class Row:
    model: str
    k: int
    one_job_seconds: float
    k_jobs_seconds: float
    outputs_identical: bool

    @property
    def ratio(self) -> float:
        return self.k_jobs_seconds / self.one_job_seconds

    def line(self) -> str:
        target = TARGETS.get((self.model, self.k))
        verdict = "" if target is None else (
            f"  target >= {target}x: {'met' if self.ratio >= target else 'MISSED'}")
        return (f"{self.model:<7} K={self.k:<2} one job {self.one_job_seconds:7.2f} s   "
                f"{self.k:>2} jobs {self.k_jobs_seconds:7.2f} s   {self.ratio:5.2f}x"
                f"   outputs identical: {self.outputs_identical}{verdict}")


def copies(model_dir: Path, root: Path, k: int) -> list[Path]:
    """K bundles of the model, each with its own name (``m0``, ``m1``, ...)."""
    bundles = []
    for index in range(k):
        bundle = root / f"m{index}"
        if not bundle.exists():
            shutil.copytree(model_dir, bundle, symlinks=True)
            metadata = json.loads((bundle / METADATA_FILE).read_text())
            metadata["name"] = f"m{index}"
            (bundle / METADATA_FILE).write_text(json.dumps(metadata))
        bundles.append(bundle)
    return bundles


def _run(root: Path) -> float:
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "container", "infer"],
                            env={"PATH": "/usr/bin:/bin", ROOT_ENV_VAR: str(root)},
                            capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"infer failed under {root}:\n{result.stdout[-3000:]}"
                           f"{result.stderr[-3000:]}")
    return elapsed


def one_job(data_dir: Path, models_dir: Path, names: list[str], run_dir: Path) -> float:
    """One instance of a multi-model job: the models' folder as the model channel, the
    scoring plan in the config channel, a folder per model below the output."""
    shutil.rmtree(run_dir, ignore_errors=True)
    root = run_dir / "opt_ml"
    for channel, folder in ((DATA_INPUT, data_dir), (MODEL_INPUT, models_dir)):
        local = root / opt_ml_relative(input_path(channel))
        local.parent.mkdir(parents=True, exist_ok=True)
        local.symlink_to(folder, target_is_directory=True)
    config = root / opt_ml_relative(input_path(CONFIG_INPUT))
    config.mkdir(parents=True)
    plan = ScoringPlan([PlannedModel(name=n, bundle=n, output=n) for n in names])
    (config / SCORING_PLAN_FILE).write_text(json.dumps(plan.to_dict()))
    write_standalone_config(root, inputs=(DATA_INPUT, MODEL_INPUT, CONFIG_INPUT),
                            outputs=(PREDICTIONS_OUTPUT,))
    return _run(root)


def single_job(data_dir: Path, bundle: Path, run_dir: Path) -> float:
    shutil.rmtree(run_dir, ignore_errors=True)
    root = run_dir / "opt_ml"
    lay_out_instance(root, data_dir, bundle)
    return _run(root)


def _output(run_dir: Path, model: str | None) -> dict[str, object]:
    folder = run_dir / "opt_ml" / opt_ml_relative(output_path(PREDICTIONS_OUTPUT))
    if model:
        folder = folder / model
    return {p.name: pq.read_table(p) for p in sorted(folder.glob("*.parquet"))}


def measure(case: str, k: int, work_dir: Path, mode: str, repeats: int = 3) -> Row:
    workload_name, ks = CASES[case]
    (spec,) = [s for s in workload_specs(mode) if s.name == workload_name]
    workload = prepare(spec, work_dir / "bench")
    models_dir = work_dir / "multi_model" / case / "models"
    names = [b.name for b in copies(workload.model_dir, models_dir, k)]
    runs = work_dir / "multi_model" / case / "runs"
    if k == ks[0]:  # warm the page cache and imports; not counted
        single_job(workload.data_dir, models_dir / names[0], runs / "warm-up")
    ones, singles = [], []
    identical = True
    for _ in range(repeats):  # interleaved, so a burst of other load hits both sides
        ones.append(one_job(workload.data_dir, models_dir, names, runs / "one"))
        total = 0.0
        for name in names:
            run_dir = runs / f"single-{name}"
            total += single_job(workload.data_dir, models_dir / name, run_dir)
            mine, theirs = _output(runs / "one", name), _output(run_dir, None)
            identical &= mine.keys() == theirs.keys() and all(
                mine[f].equals(theirs[f]) for f in mine)
            shutil.rmtree(run_dir)
        singles.append(total)
    return Row(case, k, statistics.median(ones), statistics.median(singles), identical)


def cost_split(rows: list[Row]) -> list[str]:
    """What one job's time is made of: a shared part ``s`` (start-up, reads, decoding:
    paid once) and a part ``p`` per model (its predictions, output, statistics),
    fitted by least squares to the one-job seconds over K. K jobs pay ``K (s + p)``,
    so no job of K models can be more than ``K (s + p) / (s + K p)`` faster: the
    ratio a target asks for is reachable only while ``p`` is that small."""
    if len(rows) < 2:
        return []
    ks = [r.k for r in rows]
    seconds = [r.one_job_seconds for r in rows]
    mean_k, mean_s = statistics.fmean(ks), statistics.fmean(seconds)
    per_model = (sum((k - mean_k) * (t - mean_s) for k, t in zip(ks, seconds, strict=True))
                 / sum((k - mean_k) ** 2 for k in ks))
    shared = mean_s - per_model * mean_k
    if per_model <= 0 or shared <= 0:
        return ["", "linear: one-job seconds do not grow with K; no cost split fitted"]
    bound = 4 * (shared + per_model) / (shared + 4 * per_model)
    target = TARGETS[("linear", 4)]
    return ["", f"linear: one job ~ {shared:.2f} s shared + {per_model:.2f} s per model "
            f"(fitted over K = {', '.join(map(str, ks))}); with these, K = 4 is at most "
            f"{bound:.2f}x faster than 4 jobs, and {target}x needs at most "
            f"{shared * (4 - target) / (4 * (target - 1)):.2f} s per model"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.multi_model",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=["short", "full", "tiny"], default="short")
    parser.add_argument("--repeats", type=int, default=3,
                        help="interleaved runs of each side; the medians count")
    parser.add_argument("--work-dir", type=Path, default=Path(".data/bench"))
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    work_dir = args.work_dir.resolve()  # the instance channels are symlinks to it
    rows = [measure(case, k, work_dir, args.mode, args.repeats)
            for case, (_, ks) in CASES.items() for k in ks]
    lines = [f"multi-model jobs, mode {args.mode}: one job scoring K models vs K single-model "
             "jobs run one after another (wall seconds incl. process start-up, medians of "
             f"{args.repeats} interleaved runs)", ""]
    lines += [row.line() for row in rows]
    lines += cost_split([r for r in rows if r.model == "linear"])
    print("\n".join(lines))
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / f"multi-model-{args.mode}.txt").write_text("\n".join(lines) + "\n")
    (args.results / f"multi-model-{args.mode}.json").write_text(json.dumps(
        [row.__dict__ | {"ratio": round(row.ratio, 3)} for row in rows], indent=2))
    return 0 if all(row.outputs_identical for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
