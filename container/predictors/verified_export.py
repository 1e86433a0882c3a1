"""At import: a network's ONNX export, made once, verified and timed, kept in the bundle.

Before, every scoring job of a torch or TensorFlow model imported the framework,
exported the model to ONNX, checked the export on the job's first batch and raced
the two paths (``container.predictors.fastest``): seconds of start-up per job (the
benchmark measured 4.5 s for W4 and 6.8 s for W5 against 1.5 s for ONNX Runtime
alone), spent again on every job although the model never changes. A bundle is
immutable and versioned by digest, so all of that can be done once, when the bundle
version is made (``python -m container import``):

1. export the loaded model (``export_onnx`` of ``container.frameworks.torch`` /
   ``tensorflow``: the same exporters the job-start path uses);
2. verify the export against the framework's own predictions within
   ``GRAPH_TOLERANCE`` (1e-5, scaled above 1; why 1e-5 and not the trees' 1e-6 is in
   ``container.predictors.fastest``) on the holdout rows when the registry gives
   holdout data, else on ``SYNTHETIC_ROWS`` deterministic standard-normal rows of the
   declared features; rows with missing values are checked apart (see below);
3. time both paths on ``DEFAULT_BATCH_ROWS`` rows scored as the engine scores them
   (``NETWORK_CALL_ROWS`` per call) and on one call, with ONNX Runtime given the
   threads the framework was loaded with: the import loads networks with the threads
   of one worker of a job with at least as many row groups as cores (one thread per
   call), because timing one path with every core says little about a job whose
   workers each call with one. ONNX Runtime wins only by ``MARGIN`` (on a tie the
   framework, the reference, scores);
4. write the graph as ``ONNX_EXPORT_FILE`` beside the artifact and return the
   ``ModelMetadata`` fields that record it: its SHA-256, the tolerance and the
   difference measured, the rows it was verified on, the timings and the winner.

Missing values: TensorFlow's fused MatMul+BiasAdd+ReLU kernel turns NaN into 0 in
graph mode while ONNX Runtime keeps NaN, so an export can agree on complete rows and
not on rows with missing values. Those are checked separately (the holdout's rows
with missing values, else the verification rows with ``MISSING_SHARE`` of values
removed) and ``onnx_export_agrees_on_missing`` records the verdict, for the record
only: no network is ever given a missing value (``container.model_inputs`` refuses
or fills them first, by the model's policy), so no row depends on it.

A model that does not export, or whose export disagrees on complete rows, gets no
``onnx_export`` and ``fastest_predictor = "framework"`` with the reason in
``onnx_export_note``: its jobs load the framework alone, without trying to export
again. The timings were taken on the import machine; a scoring instance of another
type could rank the two paths otherwise, which ``predictor = "framework"`` (or
importing on that instance type) overrides.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import numpy as np

from container.contract import DEFAULT_BATCH_ROWS, ONNX_EXPORT_FILE, ModelMetadata
from container.errors import JobInputError
from container.framework_table import names as framework_names
from container.predictors.fastest import GRAPH_TOLERANCE, MARGIN, best_seconds, repeated_rows
from container.predictors.network_calls import NETWORK_CALL_ROWS, in_calls
from container.predictors.network_outputs import declared_output, task_values
from container.predictors.two_path import largest_difference

log = logging.getLogger("container.predictors.verified_export")

# networks whose import makes a verified ONNX export (an ONNX model is one already)
EXPORTED_NETWORKS = framework_names(onnx_export=True)
SYNTHETIC_ROWS = 4_096
SYNTHETIC_SEED = 0
MISSING_SHARE = 0.05  # of the values removed for the missing-value check
ONNXRUNTIME, FRAMEWORK = "onnxruntime", "framework"


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def synthetic_rows(n_features: int, rows: int = SYNTHETIC_ROWS) -> np.ndarray:
    """Deterministic standard-normal float32 rows: the same on every import."""
    generator = np.random.default_rng(SYNTHETIC_SEED)
    return generator.standard_normal((rows, n_features)).astype(np.float32)


def with_missing(rows: np.ndarray) -> np.ndarray:
    """A copy of ``rows`` with ``MISSING_SHARE`` of the values (at least one per row
    of a deterministic half of the rows) set to NaN."""
    generator = np.random.default_rng(SYNTHETIC_SEED + 1)
    missing = rows.copy()
    missing[generator.random(missing.shape) < MISSING_SHARE] = np.nan
    half = np.arange(0, len(missing), 2)
    missing[half, generator.integers(0, missing.shape[1], len(half))] = np.nan
    return missing


def _split(rows: np.ndarray | None, n_features: int) -> tuple[np.ndarray, str, np.ndarray]:
    """(complete rows, what they are, rows with missing values) to verify on."""
    if rows is not None and len(rows):
        has_missing = np.isnan(rows).any(axis=1)
        complete, missing = rows[~has_missing], rows[has_missing]
        if len(complete):
            what = f"{len(complete):,} holdout rows"
            if len(missing):
                return complete, what, missing
            return complete, what, with_missing(complete)
    complete = synthetic_rows(n_features)
    return complete, f"{len(complete):,} synthetic rows (seed {SYNTHETIC_SEED})", \
        with_missing(complete)


def _message(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:200] if text else ''}"


class _OrtPath:
    """ONNX Runtime on the exported graph, its output shaped as the framework's."""

    def __init__(self, graph: bytes, metadata: ModelMetadata, artifact: str,
                 threads: int) -> None:
        from container.predictors.onnx_runtime import OrtGraph, ort_session

        self.graph = OrtGraph(ort_session(graph, threads))
        self.task = metadata.task
        self.output = declared_output(metadata, artifact)
        self.artifact = artifact

    def predict(self, features: np.ndarray) -> np.ndarray:
        return task_values(self.graph.run(features), self.task, self.output, self.artifact)


def _no_export(note: str) -> dict[str, Any]:
    log.info("%s; its jobs score with the framework", note)
    return {"fastest_predictor": FRAMEWORK, "onnx_export_note": note}


def _difference(model: Any, fast: _OrtPath, rows: np.ndarray) -> float:
    reference = model.predict_prepared(rows)
    try:
        exported = in_calls(fast.predict, rows)
    except JobInputError:  # the export's outputs are no probabilities: it is wrong
        return float("inf")
    return largest_difference(exported, reference)


def _timings(model: Any, fast: _OrtPath, sample: np.ndarray) -> dict[str, list[float]]:
    """Seconds per path (framework, ONNX Runtime) at one call and at one engine batch."""
    timings = {}
    for rows in (NETWORK_CALL_ROWS, DEFAULT_BATCH_ROWS):
        features = repeated_rows(sample, rows)
        framework = best_seconds(model.predict_prepared, features)
        exported = best_seconds(lambda f: in_calls(fast.predict, f), features)
        timings[str(rows)] = [framework, exported]
    return timings


def export_verified(model: Any, metadata: ModelMetadata, bundle: Path,
                    rows: np.ndarray | None, threads: int) -> dict[str, Any]:
    """Export ``model`` (a torch or TensorFlow model loaded with the framework
    predictor from ``bundle``), verify and time the export on ``rows`` (the holdout's
    features as float32, or ``None``), write it to ``bundle`` if it agreed; returns
    the ``ModelMetadata`` fields that record the outcome."""
    artifact = metadata.artifact
    try:
        graph = model.export_onnx()
    except Exception as exc:  # exporters raise anything for an op they lack
        return _no_export(f"{artifact} does not export to ONNX ({_message(exc)})")
    try:
        fast = _OrtPath(graph, metadata, str(bundle / artifact), threads)
    except Exception as exc:  # onnxruntime missing, or a graph it cannot load
        return _no_export(f"ONNX Runtime cannot load the export of {artifact} "
                          f"({_message(exc)})")
    complete, verified_on, missing = _split(rows, len(metadata.features))
    difference = _difference(model, fast, complete)
    if not difference <= GRAPH_TOLERANCE:  # NaN (only one side NaN) fails too
        return _no_export(f"the ONNX export of {artifact} differs from the framework by "
                          f"{difference:.3g} on {verified_on} (tolerance {GRAPH_TOLERANCE})")
    missing_difference = _difference(model, fast, missing)
    agrees_on_missing = bool(missing_difference <= GRAPH_TOLERANCE)
    timings = _timings(model, fast, complete)
    framework_s, onnx_s = timings[str(DEFAULT_BATCH_ROWS)]
    winner = ONNXRUNTIME if onnx_s < MARGIN * framework_s else FRAMEWORK
    (bundle / ONNX_EXPORT_FILE).write_bytes(graph)
    note = "" if agrees_on_missing else (
        f"differs from the framework by {missing_difference:.3g} on rows with missing "
        "values: batches with missing values are scored by the framework")
    log.info("ONNX export of %s verified on %s (max difference %.2g, tolerance %s; rows "
             "with missing values: %s); %s rows per batch: framework %.1f ms, ONNX Runtime "
             "%.1f ms; fastest: %s", artifact, verified_on, difference, GRAPH_TOLERANCE,
             "agree" if agrees_on_missing else "differ", f"{DEFAULT_BATCH_ROWS:,}",
             framework_s * 1e3, onnx_s * 1e3, winner)
    return {"fastest_predictor": winner, "onnx_export": ONNX_EXPORT_FILE,
            "onnx_export_sha256": sha256_of(bundle / ONNX_EXPORT_FILE),
            "onnx_export_tolerance": GRAPH_TOLERANCE,
            "onnx_export_max_difference": difference,
            "onnx_export_verified_on": verified_on,
            "onnx_export_agrees_on_missing": agrees_on_missing,
            "predictor_timings": timings, "onnx_export_note": note}
