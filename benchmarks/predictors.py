"""Which tree predictor is fastest here? XGBoost's own against the alternatives.

``python -m benchmarks.predictors [--mode short]`` scores the W1 model's rows held
in memory with every predictor that is installed (oneDAL via daal4py, ONNX Runtime
via onnxmltools, TL2cgen-compiled C) and prints rows/s, the ratio to XGBoost's
``inplace_predict`` measured in the same run, and the largest difference from
XGBoost's predictions. The engine adopts a predictor only where it is faster here
and agrees within 1e-6; the outcome is recorded in the README.

None of the alternatives is a dependency of the project; install them by hand
into a scratch environment to rerun this (``pip install scikit-learn-intelex
onnxruntime onnxmltools tl2cgen treelite``).
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from benchmarks.workloads import FEATURES, prepare, workload_specs
from container.environment import available_cpus

ROWS = 400_000
TOLERANCE = 1e-6


def rows_per_second(predict: Callable[[np.ndarray], np.ndarray], matrix: np.ndarray,
                    repeats: int = 3) -> tuple[float, np.ndarray]:
    predict(matrix[:1_000])  # warm-up: lazy initialisation, JIT, page faults
    best, result = float("inf"), None
    for _ in range(repeats):
        started = time.perf_counter()
        result = predict(matrix)
        best = min(best, time.perf_counter() - started)
    return len(matrix) / best, np.asarray(result, dtype=np.float64).ravel()


def xgboost_threads(booster, cpus: int) -> Callable[[np.ndarray], np.ndarray]:
    """What the engine does: one thread per core, each call single-threaded."""
    booster.set_param({"nthread": 1})

    def predict(matrix: np.ndarray) -> np.ndarray:
        with ThreadPoolExecutor(cpus) as pool:
            parts = pool.map(lambda part: booster.inplace_predict(part, missing=np.nan),
                             np.array_split(matrix, cpus * 4))
            return np.concatenate(list(parts))
    return predict


def candidates(booster, cpus: int, work: Path) -> dict[str, Callable[[], Callable]]:
    """Builders of every installed alternative (building may take a while: compiling)."""
    found: dict[str, Callable[[], Callable]] = {}
    if importlib.util.find_spec("daal4py") is not None:
        def onedal():
            import daal4py

            model = daal4py.mb.convert_model(booster)
            return lambda matrix: model.predict_proba(matrix)[:, 1]
        found["oneDAL (daal4py)"] = onedal
    if importlib.util.find_spec("onnxruntime") and importlib.util.find_spec("onnxmltools"):
        def onnx():
            import onnxmltools
            import onnxruntime
            from onnxmltools.convert.common.data_types import FloatTensorType

            unnamed = booster.copy()
            unnamed.feature_names = None
            proto = onnxmltools.convert_xgboost(
                unnamed, initial_types=[("features", FloatTensorType([None, len(FEATURES)]))])
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = cpus
            session = onnxruntime.InferenceSession(proto.SerializeToString(), options,
                                                   providers=["CPUExecutionProvider"])
            output = session.get_outputs()[1].name
            return lambda matrix: np.asarray(
                session.run([output], {"features": matrix})[0])[:, 1]
        found["ONNX Runtime"] = onnx
    if importlib.util.find_spec("tl2cgen") and importlib.util.find_spec("treelite"):
        def compiled():
            import tl2cgen
            import treelite

            model = treelite.frontend.from_xgboost(booster)
            library = work / "trees.so"
            tl2cgen.export_lib(model, toolchain="gcc", libpath=str(library),
                               params={"parallel_comp": cpus * 4}, nthread=cpus)
            predictor = tl2cgen.Predictor(str(library), nthread=cpus)
            return lambda matrix: predictor.predict(tl2cgen.DMatrix(matrix)).ravel()
        found["TL2cgen (compiled C)"] = compiled
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", default="short", choices=["short", "full"])
    parser.add_argument("--work-dir", type=Path, default=Path(".data/bench"))
    args = parser.parse_args()
    import xgboost as xgb

    spec = next(s for s in workload_specs(args.mode) if s.name == "W1")
    workload = prepare(spec, args.work_dir.resolve() / args.mode)
    table = pq.read_table(workload.input_files[0], columns=FEATURES)
    matrix = np.column_stack([table.column(name).to_numpy() for name in FEATURES])
    matrix = np.ascontiguousarray(np.resize(matrix, (ROWS, len(FEATURES))))
    booster = xgb.Booster()
    booster.load_model(str(workload.model_dir / "model.ubj"))
    cpus = available_cpus()
    baseline_speed, reference = rows_per_second(xgboost_threads(booster, cpus), matrix)
    print(f"{'predictor':<24} {'rows/s':>10} {'x xgboost':>9}  max |diff|")
    print(f"{'XGBoost inplace_predict':<24} {baseline_speed:>10,.0f} {1.0:>9.2f}  0")
    with tempfile.TemporaryDirectory() as work:
        for name, build in candidates(booster, cpus, Path(work)).items():
            try:
                speed, result = rows_per_second(build(), matrix)
            except Exception as exc:  # report every candidate, including the broken ones
                print(f"{name:<24} failed: {type(exc).__name__}: {str(exc)[:120]}")
                continue
            worst = float(np.max(np.abs(result - reference)))
            verdict = "agrees" if worst <= TOLERANCE else "DISAGREES"
            print(f"{name:<24} {speed:>10,.0f} {speed / baseline_speed:>9.2f}  "
                  f"{worst:.1e} ({verdict})")


if __name__ == "__main__":
    main()
