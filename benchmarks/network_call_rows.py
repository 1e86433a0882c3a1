"""Rows per call for network models: the engine's predictors timed at each call size.

``container.predictors.network_calls.NETWORK_CALL_ROWS`` sets how many rows a torch or
TensorFlow model is given per call. This times a bundle's two paths as the engine
calls them (its verified ONNX export on ONNX Runtime, and the framework under
``inference_mode`` / ``tf.function``: ``benchmarks.network_paths``'s scorers) on one
``DEFAULT_BATCH_ROWS`` batch split into calls of each candidate size, with one
thread per call (the engine's plan when an instance has at least as many row groups
as cores), best of three passes, and prints rows/s per path and size.

Run as ``python -m benchmarks.network_call_rows MODEL_DIR [MODEL_DIR ...]`` on the
bundles of W4/W5 (``.data/bench/<mode>/model-*-verified-export``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from benchmarks.network_paths import build_scorer
from container.contract import DEFAULT_BATCH_ROWS, METADATA_FILE
from container.predictors.network_calls import in_calls

CALL_SIZES = (512, 1_024, 2_048, 4_096, 8_192, 16_384, DEFAULT_BATCH_ROWS)
PASSES = 3


def rows_per_second(predict, features: np.ndarray, rows: int) -> float:
    predict(features[:rows])  # allocation at the shape, thread start-up
    best = float("inf")
    for _ in range(PASSES):
        started = time.perf_counter()
        in_calls(predict, features, rows)
        best = min(best, time.perf_counter() - started)
    return len(features) / best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model_dirs", type=Path, nargs="+")
    args = parser.parse_args()
    for model_dir in args.model_dirs:
        metadata = json.loads((model_dir / METADATA_FILE).read_text())
        features = np.random.default_rng(0).standard_normal(
            (DEFAULT_BATCH_ROWS, len(metadata["features"]))).astype(np.float32)
        for path in ("framework", "onnx"):
            predict, name = build_scorer(path, model_dir, metadata, cores=1)
            measured = ", ".join(
                f"{rows:,}: {rows_per_second(predict, features, rows) / 1e3:.0f}k"
                for rows in CALL_SIZES)
            print(f"{metadata['name']} {name} (rows per call: rows/s): {measured}",
                  flush=True)

if __name__ == "__main__":
    main()
