"""Baseline 1, the seed pattern this project comes from, written from its description.

A process pool with one worker per CPU and one task per input file; each task loads
the model, reads the whole file with ``pandas.read_parquet``, adds a ``prediction``
column from the model's predict on the DataFrame, and writes the frame with
``DataFrame.to_parquet``: all columns (``--all-columns``) or, for the ratios'
output contract, the key column and the prediction.

For the networks (W4, W5) the predict is each framework's usual call on the whole
file: ``model(torch.tensor(frame[features].values))`` on the TorchScript module
(autograd on, PyTorch's default thread count in every worker) and Keras
``model.predict(frame[features].values)`` at its default batch size (32 rows;
``verbose=0`` only so that no progress bar is written).

Run as ``python -m benchmarks.seed WORKLOAD_DATA MODEL_DIR OUT_DIR [--all-columns]``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from benchmarks.models import load_framework_model
from container.contract import METADATA_FILE

SEED_CALLS = {"torch": "model(torch.tensor(values)) on each whole file",
              "tensorflow": "model.predict(values), batch 32"}


def network_predict(framework: str, artifact: Path, values: np.ndarray) -> np.ndarray:
    """The framework's usual load and call, as a notebook or a first script has it."""
    if framework == "torch":
        import torch

        model = torch.jit.load(str(artifact))
        return model(torch.tensor(values)).detach().numpy()[:, 0]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    model = keras.models.load_model(str(artifact))
    return model.predict(values, verbose=0)[:, 0]


def score_file(source: str, model_dir: str, out_dir: str, all_columns: bool) -> int:
    import pandas as pd

    metadata = json.loads((Path(model_dir) / METADATA_FILE).read_text())
    frame = pd.read_parquet(source)
    if metadata["framework"] in ("torch", "tensorflow"):
        frame["prediction"] = network_predict(
            metadata["framework"], Path(model_dir) / metadata["artifact"],
            frame[metadata["features"]].values)
    else:
        model, metadata = load_framework_model(Path(model_dir))
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
    framework = json.loads((args.model_dir / METADATA_FILE).read_text())["framework"]
    print(json.dumps({"rows": rows, "seconds": time.perf_counter() - started,
                      "predictor": SEED_CALLS.get(framework, "predict_proba(DataFrame)")
                      + f", {os.cpu_count()} processes"}))


if __name__ == "__main__":
    main()
