"""XGBoost trees scored by oneDAL (Intel's Data Analytics Library, via daal4py).

Measured here (AMD EPYC, 2 cores; ``python -m benchmarks.predictors``): oneDAL's
gradient-boosting predict is about 2.5x XGBoost 3.2's ``inplace_predict`` on the
benchmark's 200-tree, depth-8 model, with probabilities within 2e-7 of XGBoost's.
ONNX Runtime (0.55x) and TL2cgen-compiled C (0.28x) were slower and are not used.

Converted objectives (``CONVERTIBLE_OBJECTIVES``), measured against XGBoost's
``inplace_predict``: ``binary:logistic`` (oneDAL's ``predict_proba[:, 1]``, within
1.2e-7), ``multi:softprob`` (``predict_proba``, one column per class, within 1.2e-7)
and ``reg:squarederror`` (``predict``: the same float32 sum of leaves in another order,
so within a unit in float32's last place, 1.2e-6 at a value of 10; the engine's check
scales its tolerance by the value above 1, see ``container.predictors.two_path``).
Other objectives are not converted and XGBoost scores them: oneDAL has no link
function for them (``reg:logistic``, ``count:poisson``, ``reg:tweedie``, ...), so its
output would not be XGBoost's. The engine compares both on the job's first batch
before relying on oneDAL.

Converting takes about a second (200 trees, in Python), so training saves the
converted model beside the booster (``container.contract.ONEDAL_CACHE_FILE``, with
the oneDAL version it was made with); a scoring job loads it in milliseconds and
converts only when it is missing or was made by another oneDAL version.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import logging
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from container.predictors.features import feature_matrix

log = logging.getLogger("container.predictors.onedal_trees")

# objective -> what oneDAL's model returns for it, in the engine's shape per task
CONVERTIBLE_OBJECTIVES = {
    "binary:logistic": "binary",
    "multi:softprob": "multiclass",
    "reg:squarederror": "regression",
}


def onedal_available() -> bool:
    return importlib.util.find_spec("daal4py") is not None


def booster_objective(booster: Any) -> str:
    return json.loads(booster.save_config())["learner"]["objective"]["name"]


def onedal_version() -> str:
    return importlib.metadata.version("daal")


def _convert(booster: Any) -> Any | None:
    """The booster as a oneDAL model, or ``None`` (logged) if it cannot be."""
    if not onedal_available():
        return None
    if booster_objective(booster) not in CONVERTIBLE_OBJECTIVES:
        return None  # not convertible: nothing to store (scoring jobs log why)
    import daal4py

    try:
        return daal4py.mb.convert_model(booster)
    except Exception as exc:  # daal4py raises bare exceptions for unsupported trees
        log.warning("oneDAL not used: converting the booster failed (%s: %s)",
                    type(exc).__name__, exc)
        return None


def save_converted(booster: Any, path: Path) -> bool:
    """Write the converted model to ``path`` (training does this once per version)."""
    model = _convert(booster)
    if model is None:
        return False
    path.write_bytes(pickle.dumps({"onedal_version": onedal_version(), "model": model}))
    return True


def _load_cached(path: Path) -> Any | None:
    if not path.is_file():
        return None
    try:
        cached = pickle.loads(path.read_bytes())
    except Exception as exc:  # a cache from another library build: convert instead
        log.info("oneDAL cache %s unreadable (%s); converting", path, exc)
        return None
    if cached.get("onedal_version") != onedal_version():
        log.info("oneDAL cache %s made by oneDAL %s, running %s; converting", path,
                 cached.get("onedal_version"), onedal_version())
        return None
    return cached["model"]


class OneDalTrees:
    """A converted booster: float32 row-major features in; out, what XGBoost's
    ``inplace_predict`` gives for the task: the probability of class 1 (binary), one
    probability per class (multiclass) or the value (regression)."""

    def __init__(self, model: Any, task: str) -> None:
        self.model = model
        self.task = task

    def prepare(self, batch: pa.RecordBatch, features: list[str]) -> np.ndarray:
        return feature_matrix(batch, features)

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        if self.task == "regression":
            return np.asarray(self.model.predict(matrix), dtype=np.float64)
        probabilities = np.asarray(self.model.predict_proba(matrix), dtype=np.float64)
        return probabilities[:, 1] if self.task == "binary" else probabilities


def onedal_predictor(booster: Any, cache: Path, threads: int) -> OneDalTrees | None:
    """oneDAL scoring for ``booster`` (from the cache when it is usable), or ``None``
    when daal4py is missing or the booster does not convert."""
    if not onedal_available():
        return None
    objective = booster_objective(booster)
    task = CONVERTIBLE_OBJECTIVES.get(objective)
    if task is None:
        log.info("oneDAL not used: objective %s is not one of %s", objective,
                 ", ".join(CONVERTIBLE_OBJECTIVES))
        return None
    import daal4py

    daal4py.daalinit(threads)  # oneDAL's own thread pool: never more than we were given
    model = _load_cached(cache) or _convert(booster)
    return OneDalTrees(model, task) if model is not None else None
