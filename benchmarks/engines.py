"""The engines under comparison and how each is started on a workload."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchmarks.measure import Measurement, python
from benchmarks.workloads import Workload
from container.contract import (
    DATA_INPUT,
    MODEL_INPUT,
    PREDICTIONS_OUTPUT,
    ROOT_ENV_VAR,
    input_path,
    opt_ml_relative,
    output_path,
)
from container.environment import write_standalone_config

SEED = "seed"
SEED_ALL_COLUMNS = "seed (all columns)"
ENGINE = "engine"
ENGINE_FRAMEWORK = "engine (framework predictor)"
RAY = "ray data"
LIMIT = "machine limit"
FRAMEWORK_BEST = "framework best"
ONNX_RUNTIME = "onnx runtime"
# the network workloads' paths the engine is compared with ("time / fastest")
NETWORK_PATHS = (SEED, FRAMEWORK_BEST, ONNX_RUNTIME)


# The engine's summary line (container.infer): "scored N rows in X s (...) after Y s ..."
SCORED_LINE = re.compile(r"scored \d+ rows in (?P<scoring>[\d.]+) s .* after "
                         r"(?P<startup>[\d.]+) s of start-up")


@dataclass(frozen=True)
class Invocation:
    command: list[str]
    env: dict[str, str]
    output_dir: Path | None  # None: the engine writes nothing to verify (the limit)


@dataclass(frozen=True)
class Engine:
    name: str
    start: Callable[[Workload, Path], Invocation]
    startup_excluded: bool = False  # Ray: its cluster start-up is not counted
    reported_seconds: bool = False  # the limit: a sum of timed parts, not a wall time

    def prepare_run(self, workload: Workload, run_dir: Path) -> Invocation:
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.mkdir(parents=True)
        return self.start(workload, run_dir)

    def details(self, measured: Measurement) -> dict:
        """What the engine said about its own run (the engine: its start-up and
        scoring phases, from its last log line)."""
        details = dict(measured.reported)
        details["other_cores"] = measured.other_cores
        found = SCORED_LINE.search(measured.stdout)
        if found:
            details["scoring_seconds"] = float(found["scoring"])
            details["startup_seconds"] = float(found["startup"])
        return details

    def score_seconds(self, measured: Measurement) -> float:
        """The seconds a throughput is computed from: the whole process tree's wall
        time, except for figures the engine reports itself (the limit's sum of
        parts, Ray without its start-up)."""
        if self.reported_seconds:
            return float(measured.reported["seconds"])
        if self.startup_excluded:
            return measured.wall_seconds - float(measured.reported["startup_seconds"])
        return measured.wall_seconds


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
    return env


def _seed(all_columns: bool) -> Callable[[Workload, Path], Invocation]:
    def start(workload: Workload, run_dir: Path) -> Invocation:
        out = run_dir / "out"
        command = [python(), "-m", "benchmarks.seed", str(workload.data_dir),
                   str(workload.model_dir), str(out)]
        return Invocation(command + (["--all-columns"] if all_columns else []), _env(), out)
    return start


def lay_out_instance(root: Path, data_dir: Path, model_dir: Path) -> Path:
    """An /opt/ml tree under ``root`` whose data and model channels are the given
    folders (linked, not copied); returns the predictions output folder."""
    for channel, folder in ((DATA_INPUT, data_dir), (MODEL_INPUT, model_dir)):
        local = root / opt_ml_relative(input_path(channel))
        local.parent.mkdir(parents=True, exist_ok=True)
        local.symlink_to(folder, target_is_directory=True)
    write_standalone_config(root, inputs=(DATA_INPUT, MODEL_INPUT),
                            outputs=(PREDICTIONS_OUTPUT,))
    return root / opt_ml_relative(output_path(PREDICTIONS_OUTPUT))


def _engine(predictor: str) -> Callable[[Workload, Path], Invocation]:
    """The container's ``infer`` on one instance whose channels are the workload."""
    def start(workload: Workload, run_dir: Path) -> Invocation:
        root = run_dir / "opt_ml"
        output = lay_out_instance(root, workload.data_dir, workload.model_dir)
        return Invocation([python(), "-m", "container", "infer", "--predictor", predictor],
                          _env(**{ROOT_ENV_VAR: str(root)}), output)
    return start


def _ray(workload: Workload, run_dir: Path) -> Invocation:
    out = run_dir / "out"
    return Invocation([python(), "-m", "benchmarks.ray_data", str(workload.data_dir),
                       str(workload.model_dir), str(out)], _env(), out)


def _network_path(path: str) -> Callable[[Workload, Path], Invocation]:
    """``benchmarks.network_paths``: the framework at its best, or ONNX Runtime."""
    def start(workload: Workload, run_dir: Path) -> Invocation:
        out = run_dir / "out"
        return Invocation([python(), "-m", "benchmarks.network_paths", path,
                           str(workload.data_dir), str(workload.model_dir), str(out)],
                          _env(), out)
    return start


def _limit(workload: Workload, run_dir: Path) -> Invocation:
    return Invocation([python(), "-m", "benchmarks.limit", str(workload.data_dir),
                       str(workload.model_dir)], _env(), None)


ENGINES: dict[str, Engine] = {
    SEED: Engine(SEED, _seed(all_columns=False)),
    SEED_ALL_COLUMNS: Engine(SEED_ALL_COLUMNS, _seed(all_columns=True)),
    ENGINE: Engine(ENGINE, _engine("auto")),
    ENGINE_FRAMEWORK: Engine(ENGINE_FRAMEWORK, _engine("framework")),
    RAY: Engine(RAY, _ray, startup_excluded=True),
    LIMIT: Engine(LIMIT, _limit, reported_seconds=True),
    FRAMEWORK_BEST: Engine(FRAMEWORK_BEST, _network_path("framework")),
    ONNX_RUNTIME: Engine(ONNX_RUNTIME, _network_path("onnx")),
}


def ray_installed() -> bool:
    return importlib.util.find_spec("ray") is not None


def applicable_engines(workload: Workload, mode: str, chosen: list[str]) -> list[Engine]:
    """Which engines run on a workload: the all-columns seed only on W1 (the issue
    asks for it there); on the big-file workload no in-memory limit, no Ray and
    only the engine's default predictor, and in full mode no seed (it holds about
    five times the file in memory: over 20 GB for the 4 GiB file; short mode
    measures that ratio on a 1 GiB file); Ray only where installed. The network
    workloads have their own rows: the seed, the framework at its best, ONNX Runtime
    (if the model exported) and the engine, plus in full mode the engine with the
    framework predictor (the path the engine's choice is measured against)."""
    spec = workload.spec
    if spec.network:
        names = [SEED, FRAMEWORK_BEST, ONNX_RUNTIME, ENGINE]
        if mode == "full":
            names.append(ENGINE_FRAMEWORK)
        if workload.onnx_path is None or importlib.util.find_spec("onnxruntime") is None:
            print(f"  {spec.name}: no ONNX export or no ONNX Runtime (pip install -e "
                  f"'.[onnx]'); {ONNX_RUNTIME} skipped")
            names.remove(ONNX_RUNTIME)
        return [ENGINES[name] for name in names if name in chosen]
    names = [SEED, ENGINE, ENGINE_FRAMEWORK, RAY, LIMIT]
    if spec.name == "W1":
        names.insert(1, SEED_ALL_COLUMNS)
    if spec.name == "W3":
        names = [SEED, ENGINE] if mode != "full" else [ENGINE]
    if RAY in names and not ray_installed():
        print(f"  {spec.name}: Ray Data not installed (pip install -e '.[bench]'); skipped")
        names.remove(RAY)
    return [ENGINES[name] for name in names if name in chosen]
