"""The on-disk model bundle: ``model.json`` (metadata) beside the framework artifact.

A bundle is what ``train`` writes and ``infer`` reads. ``model.json`` carries what
inference needs without loading the artifact (``container.contract.ModelMetadata``),
so input files can be checked before any compute starts.
"""

from __future__ import annotations

import json
from itertools import pairwise
from pathlib import Path

from container.contract import (
    FASTEST_PREDICTORS,
    FRAMEWORKS,
    METADATA_FILE,
    TASKS,
    ModelMetadata,
)
from container.errors import JobInputError


def write_metadata(metadata: ModelMetadata, bundle_dir: Path) -> None:
    (bundle_dir / METADATA_FILE).write_text(json.dumps(metadata.to_dict(), indent=2))


def read_metadata(bundle_dir: Path) -> ModelMetadata:
    """Read and check a bundle's metadata; errors name the bundle folder and the fix."""
    path = bundle_dir / METADATA_FILE
    if not path.is_file():
        raise JobInputError(
            f"model artifact missing: {path} does not exist. Materialize trained_model "
            "for this model (or check the model input's S3 URI) and retry."
        )
    try:
        metadata = ModelMetadata.from_dict(json.loads(path.read_text()))
    except ValueError as exc:  # not JSON, or not ModelMetadata's fields
        raise JobInputError(f"model metadata {path} is unreadable: {exc}") from exc
    if metadata.framework not in FRAMEWORKS:
        raise JobInputError(
            f"model metadata {path}: framework {metadata.framework!r} is not one of {FRAMEWORKS}"
        )
    if metadata.task not in TASKS:
        raise JobInputError(
            f"model metadata {path}: task {metadata.task!r} is not one of {TASKS}"
        )
    if metadata.fastest_predictor not in FASTEST_PREDICTORS:
        raise JobInputError(
            f"model metadata {path}: fastest_predictor {metadata.fastest_predictor!r} is "
            f"not one of {FASTEST_PREDICTORS}; re-import the model")
    if metadata.onnx_export and not metadata.onnx_export_sha256:
        raise JobInputError(
            f"model metadata {path}: onnx_export {metadata.onnx_export!r} has no "
            "onnx_export_sha256, so it cannot be checked as the verified graph; "
            "re-import the model")
    try:
        metadata.prediction_columns()  # multiclass: labels that make distinct columns
    except ValueError as exc:
        raise JobInputError(f"model metadata {path}: {exc}") from exc
    names = metadata.output_column_names()
    if len(set(names)) != len(names):
        raise JobInputError(
            f"model metadata {path}: output columns {names} repeat a name; key, "
            "passthrough and prediction columns must differ (fix passthrough_columns in "
            "the registry and retrain)")
    edges = metadata.prediction_bin_edges
    if any(b <= a for a, b in pairwise(edges)):
        raise JobInputError(
            f"model metadata {path}: prediction_bin_edges must increase strictly, got "
            f"{edges}; retrain the model to recompute them")
    # a file, or a directory for formats that are one (a TensorFlow SavedModel)
    if not (bundle_dir / metadata.artifact).exists():
        raise JobInputError(
            f"model artifact missing: {bundle_dir / metadata.artifact} (named in {path}) "
            "does not exist. Re-materialize trained_model for this model."
        )
    return metadata
