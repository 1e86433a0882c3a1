"""Baseline 1, the seed pattern this project comes from, written from its description.

A process pool with one worker per CPU and one task per input file; each task loads
the model, reads the whole file with ``pandas.read_parquet``, adds a ``prediction``
column from the model's predict on the DataFrame, and writes the frame with
``DataFrame.to_parquet``: all columns (``--all-columns``) or, for the ratios'
output contract, the key column and the prediction.

Run as ``python -m benchmarks.seed WORKLOAD_DATA MODEL_DIR OUT_DIR [--all-columns]``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from benchmarks.models import load_framework_model


def score_file(source: str, model_dir: str, out_dir: str, all_columns: bool) -> int:
    import pandas as pd

    model, metadata = load_framework_model(Path(model_dir))
    frame = pd.read_parquet(source)
    frame["prediction"] = model.predict_proba(frame[metadata["features"]])[:, 1]
    if not all_columns:
        frame = frame[[*metadata["key_columns"], "prediction"]]
    frame.to_parquet(Path(out_dir) / Path(source).name)
    return len(frame)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--all-columns", action="store_true")
    args = parser.parse_args()
    started = time.perf_counter()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    sources = sorted(str(p) for p in args.data_dir.glob("*.parquet"))
    with ProcessPoolExecutor(max_workers=os.cpu_count()) as pool:
        rows = sum(pool.map(score_file, sources, [str(args.model_dir)] * len(sources),
                            [str(args.out_dir)] * len(sources),
                            [args.all_columns] * len(sources)))
    print(json.dumps({"rows": rows, "seconds": time.perf_counter() - started}))


if __name__ == "__main__":
    main()
