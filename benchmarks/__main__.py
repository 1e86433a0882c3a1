"""``python -m benchmarks``: score the workloads with every engine, side by side.

Each engine runs as its own child process tree, timed and memory-sampled by this
process; repeats are interleaved across engines so machine noise hits all of them
alike, and each engine's median counts. Ratios compare engines measured in this
one run, never against figures from another machine or day. Every engine's output
is checked on its first repeat: all rows present once, and a sample of
predictions equal to the framework's own ``predict_proba`` within 1e-6 (the
networks of W4 and W5: within 1e-5 of the framework's own call; ``benchmarks.verify``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from benchmarks.engines import ENGINES, Engine, applicable_engines
from benchmarks.measure import EngineFailed, run_measured
from benchmarks.report import Row, load_line, render_table, target_checks, write_chart
from benchmarks.verify import manifest_predictors, verify_output
from benchmarks.workloads import Workload, all_workload_specs, missing_modules, prepare

DEFAULT_REPEATS = {"full": 3, "short": 1, "tiny": 1}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--mode", choices=["short", "full", "tiny"], default="short",
                        help="short: scaled-down workloads, about 3 minutes; full: the "
                             "issue's sizes (16 x 250k rows, a 4 GiB file), about 35 minutes")
    parser.add_argument("--repeats", type=int, default=None,
                        help="runs per engine and workload; the median counts "
                             "(default: 3 in full mode, 1 otherwise)")
    parser.add_argument("--engines", default=",".join(ENGINES),
                        help=f"comma-separated subset of {', '.join(ENGINES)}")
    parser.add_argument("--workloads", default="W1,W2,W3,W4,W5",
                        help="comma-separated subset (W4, W5: the MLP in PyTorch and "
                             "TensorFlow; skipped if the framework is not installed)")
    parser.add_argument("--work-dir", type=Path, default=Path(".data/bench"),
                        help="where generated data, models and outputs go (reused)")
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results"),
                        help="where the table (JSON, text) and the PNG chart are written")
    parser.add_argument("--results-name", default=None,
                        help="file name of the results, without suffix (default: the mode; "
                             "give another one to keep a previous run's files, e.g. when "
                             "running a subset of the workloads)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    chosen_engines = [name.strip() for name in args.engines.split(",") if name.strip()]
    unknown = sorted(set(chosen_engines) - set(ENGINES))
    if unknown:
        print(f"unknown engine(s) {unknown}: choose from {list(ENGINES)}", file=sys.stderr)
        return 2
    repeats = args.repeats or DEFAULT_REPEATS[args.mode]
    wanted = {name.strip() for name in args.workloads.split(",") if name.strip()}
    specs = [spec for spec in all_workload_specs(args.mode) if spec.name in wanted]
    unknown = sorted(wanted - {spec.name for spec in specs})
    if unknown:
        print(f"unknown workload(s) {unknown}", file=sys.stderr)
        return 2
    work_dir = args.work_dir.resolve()
    started = time.perf_counter()
    rows: list[Row] = []
    for spec in specs:
        missing = missing_modules(spec)
        if missing:
            print(f"{spec.name}: {', '.join(missing)} not installed (pip install -e "
                  "'.[frameworks]'); skipped", flush=True)
            continue
        prepared_at = time.perf_counter()
        workload = prepare(spec, work_dir / args.mode)
        print(f"{spec.name}: {spec.rows:,} rows in {spec.files} file(s), "
              f"{workload.input_bytes / 1e9:.2f} GB, ready in "
              f"{time.perf_counter() - prepared_at:.0f} s", flush=True)
        engines = applicable_engines(workload, args.mode, chosen_engines)
        rows.extend(run_workload(workload, engines, repeats, work_dir / "runs"))
    print()
    table = render_table(rows)
    checks = target_checks(rows) if args.mode == "full" else []
    load = load_line(rows)
    checks += [load] if load else []
    print(table)
    for line in checks:
        print(line)
    args.results.mkdir(parents=True, exist_ok=True)
    name = args.results_name or args.mode
    (args.results / f"{name}.txt").write_text(table + "\n" + "\n".join(checks) + "\n")
    (args.results / f"{name}.json").write_text(
        json.dumps([row.as_dict() for row in rows], indent=2))
    chart = write_chart(rows, args.results / f"{name}.png", args.mode)
    print(f"\nchart: {chart}; total {time.perf_counter() - started:.0f} s")
    return 1 if any(row.error for row in rows) else 0


def run_workload(workload: Workload, engines: list[Engine], repeats: int,
                 runs_dir: Path) -> list[Row]:
    """Interleave the engines' repeats; verify each engine's first output."""
    seconds: dict[str, list[float]] = {engine.name: [] for engine in engines}
    peaks: dict[str, list[int]] = {engine.name: [] for engine in engines}
    parts: dict[str, list[dict]] = {engine.name: [] for engine in engines}
    errors: dict[str, str] = {}
    differences: dict[str, float] = {}
    predictors: dict[str, str] = {}
    for repeat in range(repeats):
        for engine in engines:
            if engine.name in errors:
                continue
            run_dir = runs_dir / f"{workload.spec.name}-{engine.name}"
            try:
                invocation = engine.prepare_run(workload, run_dir)
                measured = run_measured(invocation.command, invocation.env, Path.cwd(),
                                        run_dir.with_suffix(".log"))
                if repeat == 0 and invocation.output_dir is not None:
                    differences[engine.name] = verify_output(workload, invocation.output_dir)
                    # what scored the rows: the engine's manifests say, a baseline
                    # may say in its JSON line
                    chosen = (manifest_predictors(invocation.output_dir)
                              or [str(measured.reported.get("predictor") or "")])
                    if any(chosen):
                        predictors[engine.name] = "; ".join(chosen)
            except (EngineFailed, AssertionError) as exc:
                errors[engine.name] = str(exc).splitlines()[0][:200]
                print(f"  {engine.name}: FAILED: {exc}", flush=True)
                continue
            elapsed = engine.score_seconds(measured)
            seconds[engine.name].append(elapsed)
            peaks[engine.name].append(measured.peak_rss_bytes)
            parts[engine.name].append(engine.details(measured))
            print(f"  {workload.spec.name} {engine.name:<22} run {repeat + 1}/{repeats}: "
                  f"{elapsed:6.1f} s, peak RSS {measured.peak_rss_bytes / 2**20:,.0f} MiB, "
                  f"other processes {measured.other_cores:.1f} cores",
                  flush=True)
    return [
        Row(workload=workload.spec.name, description=workload.spec.description,
            engine=engine.name, rows=workload.spec.rows,
            seconds=statistics.median(seconds[engine.name]) if seconds[engine.name] else None,
            runs=seconds[engine.name],
            peak_rss_bytes=max(peaks[engine.name]) if peaks[engine.name] else None,
            input_bytes=workload.input_bytes, details=median_details(parts[engine.name]),
            error=errors.get(engine.name), max_difference=differences.get(engine.name),
            predictor=predictors.get(engine.name))
        for engine in engines
    ]


def median_details(runs: list[dict]) -> dict:
    """Each number an engine reported, as the median over its runs."""
    keys = {key for run in runs for key, value in run.items()
            if isinstance(value, int | float)}
    return {key: statistics.median(run[key] for run in runs if key in run)
            for key in sorted(keys)}


if __name__ == "__main__":
    sys.exit(main())
