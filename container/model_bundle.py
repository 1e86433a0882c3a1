"""The on-disk model bundle: ``model.json`` (metadata) beside the framework artifact.

A bundle is what ``train`` writes and ``infer`` reads. ``model.json`` carries what
inference needs without loading the artifact: framework, feature order, key
columns and version, so input files can be checked before any compute starts.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from container.errors import JobInputError

METADATA_FILE = "model.json"
FRAMEWORKS = ("xgboost", "sklearn")


@dataclass(frozen=True)
class ModelMetadata:
    name: str
    version: str
    framework: str
    features: list[str]
    key_columns: list[str]
    artifact: str
    categorical_features: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    training_rows: int = 0

    @property
    def input_columns(self) -> list[str]:
        """Columns inference reads: keys first, then features, each once."""
        return list(dict.fromkeys([*self.key_columns, *self.features]))

    def write(self, bundle_dir: Path) -> None:
        (bundle_dir / METADATA_FILE).write_text(json.dumps(asdict(self), indent=2))


def read_metadata(bundle_dir: Path) -> ModelMetadata:
    """Read and check a bundle's metadata; errors name the bundle folder and the fix."""
    path = bundle_dir / METADATA_FILE
    if not path.is_file():
        raise JobInputError(
            f"model artifact missing: {path} does not exist. Materialize trained_model "
            "for this model (or check the model input's S3 URI) and retry."
        )
    try:
        raw = json.loads(path.read_text())
        metadata = ModelMetadata(**raw)
    except (json.JSONDecodeError, TypeError) as exc:
        raise JobInputError(f"model metadata {path} is unreadable: {exc}") from exc
    if metadata.framework not in FRAMEWORKS:
        raise JobInputError(
            f"model metadata {path}: framework {metadata.framework!r} is not one of {FRAMEWORKS}"
        )
    if not (bundle_dir / metadata.artifact).is_file():
        raise JobInputError(
            f"model artifact missing: {bundle_dir / metadata.artifact} (named in {path}) "
            "does not exist. Re-materialize trained_model for this model."
        )
    return metadata
