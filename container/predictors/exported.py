"""A network bundle's verified ONNX export scored by ONNX Runtime alone: no framework
import in the scoring process.

Used for torch and TensorFlow bundles whose import verified an ONNX export and found
ONNX Runtime faster (``ModelMetadata.fastest_predictor == "onnxruntime"``, see
``container.predictors.verified_export``) when the job's predictor is ``auto``.

The verified-fast-path principle still holds: a fast path scores only after it
matched the framework on real rows. Here the match was established when the bundle
version was made: the import scored the holdout rows (or deterministic synthetic
rows) with the framework and with this very graph and kept the graph only within
``onnx_export_tolerance``. Bundles are immutable and versioned by digest, and the
graph's SHA-256 is in ``model.json``: the file loaded here is checked against it, so
it is the verified graph. Re-verifying on each job's first batch would need the
framework's predictions, that is importing torch or TensorFlow (seconds per job,
the cost this module exists to avoid), to re-check a comparison whose inputs (model,
graph, libraries of the image) have not changed.

What is still checked per job: the graph's output on the job's first batch has the
task's shape and values (``infer`` runs ``checked_predictions`` on it, and
``task_values`` checks every batch of a model declared ``probability``).

A network never sees a missing value (``container.model_inputs``: its policy refuses
or fills them before any predictor), so the graph scores every row; where the export
and the framework would differ on NaN (TensorFlow's fused kernels turn it into a
number, ONNX Runtime keeps NaN) no row is ever decided by that difference.

If the export's file does not match its recorded digest, is missing, or ONNX
Runtime cannot load it (``UnusableExport``), ``load_model`` falls back to the
job-start path of bundles without an export (export, check on the first batch,
race), logged.

Calls are at most ``NETWORK_CALL_ROWS`` rows (``container.predictors.network_calls``).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from container.contract import ModelMetadata
from container.errors import JobInputError
from container.predictors.base import ModelFacts, PathsUsed
from container.predictors.declared import check_declared
from container.predictors.features import feature_matrix
from container.predictors.network_calls import in_calls
from container.predictors.network_outputs import declared_output, task_values

log = logging.getLogger("container.predictors.exported")

PREDICTOR_NAME = "ONNX Runtime (ONNX export verified at import)"


class UnusableExport(Exception):
    """The bundle's recorded export cannot be used as the verified graph."""


def read_verified(metadata: ModelMetadata, bundle_dir: Path) -> bytes:
    """The export's bytes, if they are the ones the import verified."""
    path = bundle_dir / metadata.onnx_export
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UnusableExport(f"the bundle's ONNX export {path} is unreadable ({exc})") from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != metadata.onnx_export_sha256:
        raise UnusableExport(
            f"the bundle's ONNX export {path} has SHA-256 {digest}, not the "
            f"{metadata.onnx_export_sha256} verified at import: it is not the verified "
            "graph (re-import the model to make a bundle with a verified export)")
    return data


class ExportedNetworkModel:
    """ONNX Runtime on the verified export, for every row."""

    predictor_name = PREDICTOR_NAME
    feature_precision = np.float32

    def __init__(self, metadata: ModelMetadata, bundle_dir: Path, threads: int) -> None:
        from container.predictors.onnx_runtime import OrtGraph, ort_session

        self.metadata = metadata
        self.artifact = str(bundle_dir / metadata.onnx_export)
        self.output = declared_output(metadata, self.artifact)
        data = read_verified(metadata, bundle_dir)
        try:
            self.graph = OrtGraph(ort_session(data, threads))
            probe = self.graph.run(np.zeros((2, len(metadata.features)), np.float32))
        except Exception as exc:  # onnxruntime missing, or ONNX Runtime's own errors
            raise UnusableExport(f"ONNX Runtime cannot load or run {self.artifact} "
                                 f"({type(exc).__name__}: {exc})") from exc
        self._width = 1 if probe.ndim == 1 else int(probe.shape[1])
        check_declared(metadata, self.facts(), f"ONNX export {self.artifact}")

    def facts(self) -> ModelFacts:
        """As the framework modules say: multiclass for three or more output columns."""
        return ModelFacts(feature_names=None, n_features=None,
                          task="multiclass" if self._width >= 3 else None,
                          n_classes=self._width if self._width >= 2 else None)

    def prepare(self, batch: pa.RecordBatch) -> np.ndarray:
        return feature_matrix(batch, self.metadata.features)

    def _predict_exported(self, features: np.ndarray) -> np.ndarray:
        return task_values(self.graph.run(features), self.metadata.task, self.output,
                           self.artifact)

    def predict_prepared(self, features: np.ndarray) -> np.ndarray:
        return in_calls(self._predict_exported, features)

    def predict(self, batch: pa.RecordBatch) -> np.ndarray:
        return self.predict_prepared(self.prepare(batch))

    def predict_recorded(self, batch: pa.RecordBatch) -> tuple[np.ndarray, PathsUsed]:
        return self.predict(batch), PathsUsed(PREDICTOR_NAME)

    def verify_fast_path(self, batch: pa.RecordBatch) -> str:
        """No framework call: the export was verified at import (module docstring)."""
        metadata = self.metadata
        return (f"ONNX export verified against {metadata.framework} at import on "
                f"{metadata.onnx_export_verified_on}, max difference "
                f"{metadata.onnx_export_max_difference:.1e} (tolerance "
                f"{metadata.onnx_export_tolerance:g}), SHA-256 checked")


def load_verified(metadata: ModelMetadata, bundle_dir: Path, threads: int) -> Any:
    """The bundle's verified export on ONNX Runtime; ``UnusableExport`` if it cannot
    be, JobInputError if it contradicts the metadata."""
    if not metadata.onnx_export:
        raise JobInputError(f"model {metadata.name!r} has no ONNX export in its bundle")
    return ExportedNetworkModel(metadata, bundle_dir, threads)
