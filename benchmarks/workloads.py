"""The benchmark's workloads: deterministic data and models, built once and cached.

Every workload is a folder of Parquet input files plus a model bundle in the
container's format (``model.json`` + artifact), so each engine under test scores
exactly the same bytes with exactly the same model. Data and models are generated
from fixed seeds; a folder whose ``spec.json`` matches the requested spec is reused.

W1-W3 (``workload_specs``) score files with 1% missing values by XGBoost and a
scikit-learn pipeline. W4 and W5 (``network_workload_specs``) score one MLP
(``benchmarks.mlp``), as TorchScript and as Keras, over files generated the same
way but without missing values: a network has no notion of a missing value (a NaN
input makes a NaN output in PyTorch, while TensorFlow's fused graph kernels turn it
into 0), so tabular pipelines impute before the network, and the benchmark's
inputs are what such a network is given.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from container.contract import FOLD_FILE, ONEDAL_CACHE_FILE, ONNX_EXPORT_FILE, ModelMetadata
from container.model_bundle import write_metadata
from container.predictors.linear_fold import save_fold
from container.predictors.onedal_trees import save_converted

KEY_COLUMN = "id"
FEATURE_COUNT = 40
FEATURES = [f"x{i:02d}" for i in range(FEATURE_COUNT)]
MISSING_FRACTION = 0.01
WRITE_CHUNK_ROWS = 250_000
ROW_GROUP_ROWS = 1_048_576  # pyarrow's default maximum row group size
NETWORK_MODELS = ("torch", "keras")
MODEL_FRAMEWORKS = {"xgboost": "xgboost", "linear": "sklearn", "torch": "torch",
                    "keras": "tensorflow"}
# what each network workload needs installed (the engine, the seed and the baselines)
NETWORK_MODULES = {"torch": ("torch",), "keras": ("tensorflow", "keras")}


@dataclass(frozen=True)
class WorkloadSpec:
    """One workload: how many files of how many rows, scored by which model."""

    name: str
    description: str
    files: int
    rows_per_file: int
    # "xgboost" (200 trees, depth 8), "linear" (StandardScaler + LogReg), "torch" (a
    # TorchScript MLP) or "keras" (the same MLP's weights in Keras)
    model: str
    trees: int = 200
    depth: int = 8
    training_rows: int = 200_000
    hidden: int = 256  # networks: units in each of the two hidden layers
    epochs: int = 2  # networks: training epochs

    @property
    def network(self) -> bool:
        return self.model in NETWORK_MODELS

    @property
    def framework(self) -> str:
        """``ModelMetadata.framework`` of the workload's bundle."""
        return MODEL_FRAMEWORKS[self.model]

    @property
    def rows(self) -> int:
        return self.files * self.rows_per_file

    @property
    def data_key(self) -> str:
        """Workloads with the same files share one data folder (W1 and W2 do, and
        W4 and W5); the networks' files have no missing values."""
        key = f"data-{self.files}x{self.rows_per_file}"
        return f"{key}-complete" if self.network else key

    @property
    def model_key(self) -> str:
        if self.model == "xgboost":
            return f"model-xgboost-{self.trees}x{self.depth}-{self.training_rows}"
        if self.network:  # bundles as imported: with the ONNX export verified at import
            return f"model-{self.model}-{self.weights_key}-verified-export"
        return f"model-linear-{self.training_rows}"

    @property
    def weights_key(self) -> str:
        """The MLP's trained weights, shared by W4 (torch) and W5 (Keras)."""
        return f"mlp{self.hidden}-{self.training_rows}x{self.epochs}"


@dataclass(frozen=True)
class Workload:
    spec: WorkloadSpec
    data_dir: Path
    model_dir: Path

    @property
    def input_files(self) -> list[Path]:
        return sorted(self.data_dir.glob("*.parquet"))

    @property
    def input_bytes(self) -> int:
        return sum(path.stat().st_size for path in self.input_files)

    @property
    def onnx_path(self) -> Path | None:
        """The network exported to ONNX (for the ONNX Runtime baseline), if it exported."""
        path = self.model_dir / ONNX_EXPORT_FILE
        return path if path.is_file() else None


def rows_for_bytes(target_bytes: int) -> int:
    """Rows of one file whose size is at least ``target_bytes`` (float32 features
    of random values barely compress: about 4 bytes per feature plus 8 per id)."""
    return math.ceil(target_bytes / (4 * FEATURE_COUNT + 8) * 1.02)


def workload_specs(mode: str) -> list[WorkloadSpec]:
    """The workloads of a mode: ``full`` is the issue's sizes, ``short`` a scaled copy
    that keeps the shape (files >= cores, same model cost per row)."""
    if mode == "full":
        w1, w3_rows, training_rows = (16, 250_000), rows_for_bytes(4 * 1024**3), 200_000
    elif mode == "short":
        w1, w3_rows, training_rows = (8, 75_000), rows_for_bytes(512 * 1024**2), 50_000
    elif mode == "tiny":  # tests: seconds, not minutes
        w1, w3_rows, training_rows = (3, 4_000), 30_000, 10_000
    else:
        raise ValueError(f"unknown benchmark mode {mode!r}: use full, short or tiny")
    trees, depth = (200, 8) if mode != "tiny" else (20, 4)
    return [
        WorkloadSpec("W1", "trees: XGBoost 200x8", w1[0], w1[1], "xgboost", trees, depth,
                     training_rows),
        WorkloadSpec("W2", "linear: StandardScaler+LogReg", w1[0], w1[1], "linear",
                     training_rows=training_rows),
        WorkloadSpec("W3", "big file: one file, linear model", 1, w3_rows, "linear",
                     training_rows=training_rows),
    ]


def network_workload_specs(mode: str) -> list[WorkloadSpec]:
    """W4 and W5: one MLP (40 -> 256 -> 256 -> 1) as TorchScript and as Keras, over
    files of the W1 layout without missing values. Full mode has W1's shape (16
    files x 250,000 rows); short mode is small (4 x 25,000 rows), because each engine
    here pays seconds of framework import (TensorFlow: 4-8 s) and the seed's Keras
    ``model.predict`` at its default batch of 32 rows scores about 20,000 rows/s per
    process: short mode's ratios are mostly start-up, only full mode's are targets."""
    if mode == "full":
        shape, training_rows, hidden, epochs = (16, 250_000), 200_000, 256, 2
    elif mode == "short":
        shape, training_rows, hidden, epochs = (4, 25_000), 50_000, 256, 2
    elif mode == "tiny":
        shape, training_rows, hidden, epochs = (3, 4_000), 4_000, 16, 1
    else:
        raise ValueError(f"unknown benchmark mode {mode!r}: use full, short or tiny")
    described = f"MLP {FEATURE_COUNT}-{hidden}-{hidden}-1"
    return [
        WorkloadSpec("W4", f"torch: {described} TorchScript", *shape, "torch",
                     training_rows=training_rows, hidden=hidden, epochs=epochs),
        WorkloadSpec("W5", f"keras: {described} .keras", *shape, "keras",
                     training_rows=training_rows, hidden=hidden, epochs=epochs),
    ]


def all_workload_specs(mode: str) -> list[WorkloadSpec]:
    return workload_specs(mode) + network_workload_specs(mode)


def missing_modules(spec: WorkloadSpec) -> list[str]:
    """Modules a workload needs that are not installed (networks: their framework)."""
    import importlib.util

    return [name for name in NETWORK_MODULES.get(spec.model, ())
            if importlib.util.find_spec(name) is None]


def prepare(spec: WorkloadSpec, root: Path) -> Workload:
    """Build (or reuse) the workload's data and model under ``root``."""
    data_dir = root / spec.data_key
    model_dir = root / spec.model_key
    if spec.network:
        _ensure(data_dir, {"files": spec.files, "rows_per_file": spec.rows_per_file,
                           "missing_fraction": 0.0},
                lambda folder: _write_files(folder, spec.files, spec.rows_per_file, 0.0))
        weights_dir = root / spec.weights_key
        _ensure(weights_dir, {"hidden": spec.hidden, "training_rows": spec.training_rows,
                              "epochs": spec.epochs},
                lambda folder: _train_network(folder, spec))
        _ensure(model_dir, {"model": spec.model, "weights": spec.weights_key},
                lambda folder: _network_bundle(folder, spec, weights_dir))
        return Workload(spec, data_dir, model_dir)
    _ensure(data_dir, {"files": spec.files, "rows_per_file": spec.rows_per_file},
            lambda folder: _write_files(folder, spec.files, spec.rows_per_file))
    return Workload(spec, data_dir, prepare_model(spec, root))


def prepare_model(spec: WorkloadSpec, root: Path) -> Path:
    """Build (or reuse) a tree or linear workload's model bundle alone (benchmarks
    that lay out their own data, e.g. ``benchmarks.small_files``)."""
    model_dir = root / spec.model_key
    _ensure(model_dir, {"model": spec.model, "trees": spec.trees, "depth": spec.depth,
                        "training_rows": spec.training_rows},
            lambda folder: _train(folder, spec))
    return model_dir


def _ensure(folder: Path, spec: dict, build) -> None:
    marker = folder / "_spec.json"
    if marker.is_file() and json.loads(marker.read_text()) == spec:
        return
    shutil.rmtree(folder, ignore_errors=True)
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    build(partial)
    (partial / "_spec.json").write_text(json.dumps(spec))
    partial.rename(folder)


def feature_block(rng: np.random.Generator, rows: int,
                  missing: float = MISSING_FRACTION) -> np.ndarray:
    """Standard-normal float32 features with a few missing values (NaN)."""
    block = rng.standard_normal((rows, FEATURE_COUNT), dtype=np.float32)
    if missing:
        block[rng.random((rows, FEATURE_COUNT)) < missing] = np.nan
    return block


def labels_for(block: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A label with linear and interaction signal, so both models learn something."""
    x = np.nan_to_num(block)
    logit = x[:, :8].sum(axis=1) * 0.6 + x[:, 8] * x[:, 9] - np.abs(x[:, 10]) + 0.5
    return (rng.random(len(x)) < 1 / (1 + np.exp(-logit))).astype(np.int8)


def feature_table(ids: np.ndarray, block: np.ndarray) -> pa.Table:
    columns = {KEY_COLUMN: pa.array(ids, pa.int64())}
    columns.update({name: pa.array(block[:, i]) for i, name in enumerate(FEATURES)})
    return pa.table(columns)


def _write_files(folder: Path, files: int, rows_per_file: int,
                 missing: float = MISSING_FRACTION) -> None:
    """Input files as a data producer would write them: snappy, default row groups."""
    rng = np.random.default_rng(20261128)
    next_id = 0
    for index in range(files):
        path = folder / f"part-{index:05d}.parquet"
        with pq.ParquetWriter(path, feature_table(np.zeros(0, np.int64),
                                           np.zeros((0, FEATURE_COUNT), np.float32)).schema,
                              use_dictionary=False) as writer:
            remaining = rows_per_file
            while remaining:
                rows = min(WRITE_CHUNK_ROWS, remaining)
                ids = np.arange(next_id, next_id + rows, dtype=np.int64)
                writer.write_table(feature_table(ids, feature_block(rng, rows, missing)),
                                   row_group_size=ROW_GROUP_ROWS)
                next_id += rows
                remaining -= rows


def _train(folder: Path, spec: WorkloadSpec) -> None:
    """Fit the workload's model on its own sample and write a container bundle."""
    import pandas as pd

    rng = np.random.default_rng(7)
    block = feature_block(rng, spec.training_rows)
    frame = pd.DataFrame(block, columns=FEATURES)
    label = labels_for(block, rng)
    if spec.model == "xgboost":
        import xgboost as xgb

        model = xgb.XGBClassifier(n_estimators=spec.trees, max_depth=spec.depth,
                                  learning_rate=0.1, tree_method="hist", random_state=0)
        model.fit(frame, label)
        artifact, framework = "model.ubj", "xgboost"
        model.get_booster().save_model(str(folder / artifact))
        save_converted(model.get_booster(), folder / ONEDAL_CACHE_FILE)  # as training does
    elif spec.model == "linear":
        import joblib
        from sklearn.impute import SimpleImputer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        model = make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression())
        model.fit(frame, label)
        artifact, framework = "model.joblib", "sklearn"
        joblib.dump(model, folder / artifact)
        save_fold(model, FEATURES, folder / artifact, folder / FOLD_FILE,  # as training does
                  frame.iloc[:20_000])
    else:
        raise ValueError(f"unknown workload model {spec.model!r}")
    metadata = ModelMetadata(
        name=f"bench_{spec.model}", version="bench", framework=framework,
        features=FEATURES, key_columns=[KEY_COLUMN], artifact=artifact,
        training_rows=spec.training_rows,
    )
    write_metadata(metadata, folder)


def _train_network(folder: Path, spec: WorkloadSpec) -> None:
    """The MLP's weights, trained on complete rows (as W4's and W5's files are)."""
    from benchmarks import mlp

    rng = np.random.default_rng(7)
    block = feature_block(rng, spec.training_rows, missing=0.0)
    weights = mlp.train_weights(block, labels_for(block, rng), spec.hidden, spec.epochs)
    mlp.save_weights(weights, folder / "weights.npz")


def _network_bundle(folder: Path, spec: WorkloadSpec, weights_dir: Path) -> None:
    """The trained MLP as the workload's framework saves it, in a bundle as
    ``python -m container import`` makes it without holdout data: with its ONNX export
    verified on synthetic rows and timed (``container.predictors.verified_export``).
    The export, ``model.onnx``, is also what the ONNX Runtime baseline scores; a
    model whose export is not verified (or not installed) has none, and that
    baseline is then not run."""
    from dataclasses import replace

    from benchmarks import mlp
    from container.environment import available_cpus
    from container.frameworks import load_model
    from container.parallelism import plan_parallelism
    from container.predictors.verified_export import export_verified

    weights = mlp.load_weights(weights_dir / "weights.npz")
    if spec.model == "torch":
        artifact = "model.pt"
        mlp.save_torchscript(weights, folder / artifact)
    else:
        artifact = "model.keras"
        mlp.save_keras(weights, folder / artifact)
    metadata = ModelMetadata(
        name=f"bench_mlp_{spec.model}", version="bench", framework=spec.framework,
        features=FEATURES, key_columns=[KEY_COLUMN], artifact=artifact,
        training_rows=spec.training_rows, task="binary",
    )
    cpus = available_cpus()
    threads = plan_parallelism(cpus, cpus).threads_per_worker  # as the import loads it
    model = load_model(metadata, folder, threads, "framework")
    metadata = replace(metadata, **export_verified(model, metadata, folder, None, threads))
    write_metadata(metadata, folder)