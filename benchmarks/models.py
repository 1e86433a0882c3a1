"""The frameworks' own models, loaded the way their users load them (the reference)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from container.contract import METADATA_FILE


class NetworkClassifier:
    """A binary network (TorchScript or Keras) behind ``predict_proba`` on a DataFrame,
    scored by its framework's own plain call: the TorchScript module on a float32
    tensor under ``torch.inference_mode()``, Keras ``model.predict`` (default batch)."""

    def __init__(self, framework: str, artifact: Path) -> None:
        self.framework = framework
        if framework == "torch":
            import torch

            self.model = torch.jit.load(str(artifact), map_location="cpu").eval()
        else:
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
            import keras

            self.model = keras.saving.load_model(str(artifact), compile=False)

    def positive(self, features: np.ndarray) -> np.ndarray:
        """P(positive) per row of a float32 (rows, features) matrix."""
        if self.framework == "torch":
            import torch

            with torch.inference_mode():
                return self.model(torch.from_numpy(features)).numpy().reshape(-1)
        return np.asarray(self.model.predict(features, verbose=0)).reshape(-1)

    def predict_proba(self, frame) -> np.ndarray:
        p = self.positive(np.ascontiguousarray(frame.to_numpy(np.float32)))
        return np.column_stack([1.0 - p, p])


def load_framework_model(model_dir: Path):
    """The bundle's model as its framework's estimator (``predict_proba`` on a
    DataFrame for classifiers, ``predict`` for regressors), plus the bundle's metadata."""
    metadata = json.loads((model_dir / METADATA_FILE).read_text())
    artifact = model_dir / metadata["artifact"]
    if metadata["framework"] == "xgboost":
        import xgboost as xgb

        regression = metadata.get("task", "binary") == "regression"
        model = xgb.XGBRegressor() if regression else xgb.XGBClassifier()
        model.load_model(str(artifact))
        return model, metadata
    if metadata["framework"] in ("torch", "tensorflow"):
        return NetworkClassifier(metadata["framework"], artifact), metadata
    import joblib

    return joblib.load(artifact), metadata
