"""The on-disk model bundle: ``model.json`` (metadata) beside the framework artifact.

A bundle is what ``train`` writes and ``infer`` reads. ``model.json`` carries what
inference needs without loading the artifact (``container.contract.ModelMetadata``),
so input files can be checked before any compute starts.
"""

from __future__ import annotations

import json
from pathlib import Path

from container.contract import FRAMEWORKS, METADATA_FILE, TASKS, ModelMetadata
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
    if not (bundle_dir / metadata.artifact).is_file():
        raise JobInputError(
            f"model artifact missing: {bundle_dir / metadata.artifact} (named in {path}) "
            "does not exist. Re-materialize trained_model for this model."
        )
    return metadata
