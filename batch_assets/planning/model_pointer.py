"""``models/<model>/current.json``: which trained version predictions use.

It is written only after a training job completed and its bundle was checked,
so predictions never pick up a half-written or failed model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from batch_assets.planning.layout import current_model_key
from resources.storage import ObjectStorage


class ModelNotTrainedError(Exception):
    pass


@dataclass(frozen=True)
class CurrentModel:
    model: str
    version: str
    prefix: str  # key prefix of the bundle
    framework: str
    metrics: dict
    job_name: str
    trained_at: float


def read_current_model(storage: ObjectStorage, model: str) -> CurrentModel:
    key = current_model_key(model)
    if not storage.exists(key):
        raise ModelNotTrainedError(
            f"model {model!r} has no trained version ({storage.uri(key)} is missing). "
            f"Materialize trained_model[{model}] first."
        )
    return CurrentModel(**storage.read_json(key))


def write_current_model(storage: ObjectStorage, current: CurrentModel) -> None:
    storage.write_json(current_model_key(current.model), asdict(current))
