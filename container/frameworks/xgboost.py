"""XGBoost boosters: ``inplace_predict`` (thread-safe, releases the GIL), or oneDAL where
installed and the objective converts (``container.predictors.onedal_trees``), checked against
XGBoost on the job's first batch.

What ``inplace_predict`` returns already has the engine's shape per task: the
probability of class 1 (``binary:logistic``), one probability per class
(``multi:softprob``; a ``multi:softmax`` booster, which would return class indices,
is scored as ``multi:softprob``: the same trees, probabilities instead of the argmax),
or the value (``reg:*``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from container.contract import ONEDAL_CACHE_FILE, ModelMetadata
from container.errors import JobInputError
from container.predictors.base import ModelFacts
from container.predictors.declared import check_declared
from container.predictors.features import feature_matrix
from container.predictors.onedal_trees import booster_objective, onedal_predictor
from container.predictors.two_path import TwoPathModel

# objective families -> task; reg:logistic is missing on purpose (a probability, so
# either binary or regression) and ranking objectives are no task of ours
_TASK_OF_PREFIX = {"binary:": "binary", "multi:": "multiclass", "reg:": "regression",
                   "count:": "regression", "survival:": "regression"}


def task_of_objective(objective: str) -> str | None:
    """The task an XGBoost objective trains for, or ``None`` if it does not say."""
    if objective == "reg:logistic":
        return None
    return next((task for prefix, task in _TASK_OF_PREFIX.items()
                 if objective.startswith(prefix)), None)


def booster_facts(booster: Any) -> ModelFacts:
    """What a booster records: feature names (if trained with them), feature count,
    the task of its objective and the class count (labels are not stored)."""
    objective = booster_objective(booster)
    parameters = json.loads(booster.save_config())["learner"]["learner_model_param"]
    classes = int(parameters.get("num_class", "0"))
    task = task_of_objective(objective)
    return ModelFacts(
        feature_names=list(booster.feature_names) if booster.feature_names else None,
        n_features=booster.num_features(),
        task=task,
        n_classes=classes if classes > 0 else (2 if task == "binary" else None),
    )


class XGBoostModel(TwoPathModel):
    framework_name = "xgboost inplace_predict"
    fast_name = "oneDAL"

    def __init__(self, metadata: ModelMetadata, bundle_dir: Path, threads: int,
                 predictor: str) -> None:
        import xgboost as xgb

        self.metadata = metadata
        self.booster = xgb.Booster()
        artifact = bundle_dir / metadata.artifact
        try:
            self.booster.load_model(str(artifact))
        except xgb.core.XGBoostError as exc:
            raise JobInputError(
                f"model artifact {artifact} is not a readable XGBoost model: {exc}"
            ) from exc
        objective = booster_objective(self.booster)
        if objective == "multi:softmax":
            self.booster.set_param({"objective": "multi:softprob"})
        check_declared(metadata, self.facts(), f"XGBoost objective {objective}")
        self.booster.set_param({"nthread": threads})
        if predictor == "auto":
            self._fast = onedal_predictor(self.booster, bundle_dir / ONEDAL_CACHE_FILE, threads)

    def facts(self) -> ModelFacts:
        return booster_facts(self.booster)

    def _framework_prepare(self, batch: pa.RecordBatch) -> np.ndarray:
        return feature_matrix(batch, self.metadata.features)

    def _framework_predict(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster.inplace_predict(features, missing=np.nan))


def load(metadata: ModelMetadata, bundle_dir: Path, threads: int,
         predictor: str) -> XGBoostModel:
    return XGBoostModel(metadata, bundle_dir, threads, predictor)
