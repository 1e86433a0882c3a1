"""XGBoost trees scored by oneDAL (Intel's Data Analytics Library, via daal4py).

Measured here (AMD EPYC, 2 cores; ``python -m benchmarks.predictors``): oneDAL's
gradient-boosting predict is about 2.5x XGBoost 3.2's ``inplace_predict`` on the
benchmark's 200-tree, depth-8 model, with probabilities within 2e-7 of XGBoost's.
ONNX Runtime (0.55x) and TL2cgen-compiled C (0.28x) were slower and are not used.

Only binary logistic boosters are converted: their oneDAL ``predict_proba`` is
the same probability XGBoost's ``inplace_predict`` returns. The engine also
compares both on the job's first batch before relying on oneDAL.

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

from container.features import feature_matrix

log = logging.getLogger("container.onedal_trees")

CONVERTIBLE_OBJECTIVES = ("binary:logistic",)


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
    objective = booster_objective(booster)
    if objective not in CONVERTIBLE_OBJECTIVES:
        log.info("oneDAL not used: objective %s is not one of %s", objective,
                 CONVERTIBLE_OBJECTIVES)
        return None
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
    """A converted booster: float32 row-major features in, probability of class 1 out."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def prepare(self, batch: pa.RecordBatch, features: list[str]) -> np.ndarray:
        return feature_matrix(batch, features)

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict_proba(matrix)[:, 1], dtype=np.float64)


def onedal_predictor(booster: Any, cache: Path, threads: int) -> OneDalTrees | None:
    """oneDAL scoring for ``booster`` (from the cache when it is usable), or ``None``
    when daal4py is missing or the booster does not convert."""
    if not onedal_available():
        return None
    import daal4py

    daal4py.daalinit(threads)  # oneDAL's own thread pool: never more than we were given
    model = _load_cached(cache) or _convert(booster)
    return OneDalTrees(model) if model is not None else None
