"""Baselines for the network workloads (W4, W5): the framework at its best, and ONNX Runtime.

One process that reads each file with pyarrow (the key and feature columns only),
scores it in batches with all of the machine's cores in each call, and writes key +
prediction with pyarrow (no dictionary encoding, as the engine). The batch size is
the fastest of ``BATCH_CANDIDATES`` on the first file's first 65,536 rows (timed
before scoring, counted in the run's time): "large batches" is the usual advice, but
on the 2-core development machine an MLP of 256-unit layers scores fastest at 1,024
to 4,096 rows a call (its activations then stay in the CPU's caches): PyTorch with
two threads 0.76M rows/s at 1,024 rows against 0.48M at 65,536, ONNX Runtime 1.15M
against 0.81M.

* ``framework``, the framework's documented best practice for CPU inference:
  PyTorch: the TorchScript module under ``torch.inference_mode()`` with
  ``torch.set_num_threads(cores)``; TensorFlow: a ``tf.function`` over the Keras
  model with a fixed input signature (float32, (None, features): traced once),
  intra-op threads = cores and inter-op threads = 1, set before TensorFlow starts.
* ``onnx``: ONNX Runtime on the workload's exported model (the bundle's own export,
  made and verified as the import makes it: ``container.predictors.verified_export``),
  ``intra_op_num_threads`` = cores, ``inter_op_num_threads`` = 1, all graph
  optimizations.

Files are scored one after another (no overlap of reading and scoring: each call
already uses every core). Run as ``python -m benchmarks.network_paths {framework,onnx}
DATA_DIR MODEL_DIR OUT_DIR``; prints JSON with the rows, the seconds spent loading
(imports, model, session, choosing the batch size), the seconds spent scoring, the
batch size and a description of the path.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from container.contract import METADATA_FILE

BATCH_CANDIDATES = (1_024, 4_096, 16_384, 65_536)  # 65,536: the engine's default batch
PROBE_ROWS = 65_536
PATHS = ("framework", "onnx")

Scorer = Callable[[np.ndarray], np.ndarray]


def torch_scorer(artifact: Path, cores: int) -> Scorer:
    import torch

    torch.set_num_threads(cores)
    module = torch.jit.load(str(artifact), map_location="cpu").eval()

    def score(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(x)).numpy()
    return score


def tensorflow_scorer(artifact: Path, cores: int, features: int) -> Scorer:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(cores)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras

    model = keras.saving.load_model(str(artifact), compile=False)
    function = tf.function(lambda x: model(x, training=False),
                           input_signature=[tf.TensorSpec([None, features], tf.float32)])

    def score(x: np.ndarray) -> np.ndarray:
        return function(x).numpy()
    return score


def onnx_scorer(path: Path, cores: int) -> Scorer:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = cores
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def score(x: np.ndarray) -> np.ndarray:
        return session.run(None, {name: x})[0]
    return score


def build_scorer(path: str, model_dir: Path, metadata: dict, cores: int
                 ) -> tuple[Scorer, str]:
    """The path's scorer and what it is, for the report."""
    if path == "onnx":
        from container.contract import ONNX_EXPORT_FILE

        return onnx_scorer(model_dir / ONNX_EXPORT_FILE, cores), "ONNX Runtime"
    artifact = model_dir / metadata["artifact"]
    if metadata["framework"] == "torch":
        return torch_scorer(artifact, cores), "torch inference_mode"
    return tensorflow_scorer(artifact, cores, len(metadata["features"])), "Keras tf.function"


def read_features(source: Path, metadata: dict):
    import pyarrow.parquet as pq

    features = metadata["features"]
    table = pq.read_table(source, columns=[*metadata["key_columns"], *features])
    x = np.column_stack([table.column(name).to_numpy() for name in features])
    return table, np.ascontiguousarray(x, np.float32)


def score_batched(score: Scorer, x: np.ndarray, batch_rows: int) -> np.ndarray:
    return np.concatenate([score(x[start:start + batch_rows]).reshape(-1)
                           for start in range(0, len(x), batch_rows)])


def fastest_batch(score: Scorer, sample: np.ndarray) -> int:
    """The candidate batch size that scores ``sample`` fastest: one timed pass each,
    after an untimed call on one batch of that size (thread pools, allocation at a
    new shape, tracing). About five passes over the sample, 0.3 s for an MLP."""
    timings = {}
    for batch_rows in BATCH_CANDIDATES:
        score(sample[:batch_rows])
        started = time.perf_counter()
        score_batched(score, sample, batch_rows)
        timings[batch_rows] = time.perf_counter() - started
    return min(timings, key=timings.__getitem__)


def score_files(sources: list[Path], out_dir: Path, metadata: dict, score: Scorer,
                batch_rows: int) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = 0
    for source in sources:
        table, x = read_features(source, metadata)
        predictions = score_batched(score, x, batch_rows)
        out = table.select(metadata["key_columns"]).append_column(
            "prediction", pa.array(predictions))
        pq.write_table(out, out_dir / source.name, use_dictionary=False)
        rows += table.num_rows
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("path", choices=PATHS)
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("out_dir", type=Path)
    args = parser.parse_args()
    started = time.perf_counter()
    from container.environment import available_cpus

    cores = available_cpus()
    metadata = json.loads((args.model_dir / METADATA_FILE).read_text())
    score, name = build_scorer(args.path, args.model_dir, metadata, cores)
    sources = sorted(args.data_dir.glob("*.parquet"))
    batch_rows = fastest_batch(score, read_features(sources[0], metadata)[1][:PROBE_ROWS])
    loaded = time.perf_counter()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    rows = score_files(sources, args.out_dir, metadata, score, batch_rows)
    finished = time.perf_counter()
    print(json.dumps({"rows": rows, "load_seconds": loaded - started,
                      "scoring_seconds": finished - loaded, "batch_rows": batch_rows,
                      "predictor": f"{name}, batch {batch_rows:,}, {cores} threads"}))


if __name__ == "__main__":
    main()
