"""The frameworks' own models, loaded the way their users load them (the reference)."""

from __future__ import annotations

import json
from pathlib import Path

from container.contract import METADATA_FILE


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
    import joblib

    return joblib.load(artifact), metadata
