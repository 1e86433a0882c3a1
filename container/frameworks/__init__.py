"""Model frameworks: one module per framework (``container/frameworks/<name>.py``),
imported only when a bundle of that framework is loaded.

Importing lazily keeps each job's start-up to the one framework it scores (PyTorch
or TensorFlow alone take seconds to import) and lets the core install, which has
only XGBoost and scikit-learn, score those without the optional extras. Each module
defines ``load(metadata, bundle_dir, threads, predictor) -> FrameworkModel``
(``container.frameworks.base``); adding a framework means adding its module and its
name in ``container.contract.FRAMEWORKS``, and nothing else changes.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from container.contract import FRAMEWORKS, PREDICTORS, ModelMetadata
from container.errors import JobInputError
from container.frameworks.base import FrameworkModel

# frameworks outside the core install: the pyproject extra that brings each one
_EXTRAS = {"lightgbm": "lightgbm", "onnx": "onnx", "torch": "torch",
           "tensorflow": "tensorflow"}


def install_hint(framework: str) -> str:
    """The command that installs what scoring ``framework`` models needs."""
    extra = _EXTRAS.get(framework)
    if extra is None:  # xgboost and scikit-learn are core dependencies
        return "pip install batch-inference (its core dependencies include it)"
    return f"pip install 'batch-inference[{extra}]'"


def load_model(metadata: ModelMetadata, bundle_dir: Path, threads: int = 1,
               predictor: str = "auto") -> FrameworkModel:
    """Load the bundle's artifact with the module of its framework."""
    if predictor not in PREDICTORS:
        raise ValueError(f"predictor must be one of {PREDICTORS}, not {predictor!r}")
    framework = metadata.framework
    if framework not in FRAMEWORKS:
        raise JobInputError(
            f"model {metadata.name!r}: framework {framework!r} is not one of "
            f"{', '.join(FRAMEWORKS)}")
    module_name = f"{__name__}.{framework}"
    try:
        module = importlib.import_module(module_name)
        return module.load(metadata, bundle_dir, threads, predictor)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing.startswith("container.") and missing != module_name:
            raise  # a module of ours is missing: a broken install, not a missing framework
        what = (f"its scoring module {module_name} is missing" if missing == module_name
                else f"the library it needs ({missing}) is not installed")
        raise JobInputError(
            f"model {metadata.name!r} needs framework {framework!r}, but this container "
            f"cannot score {framework} models: {what}. Install the {framework} support with "
            f"{install_hint(framework)}, or score it with an image built with it."
        ) from exc
