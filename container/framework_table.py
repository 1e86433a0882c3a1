"""Every fact about a model framework, one row per framework.

The registry (which frameworks exist, which train, which are networks), import (where
the model file is in a delivery, whether an ONNX export is made), scoring (the module
that loads it, what its import costs), the launch (which prebuilt image, which image
a shared job needs) and the install hints all read this table, so adding a framework
is its scoring module (``container/frameworks/<name>.py``), its requirements file
(``container/requirements-<name>.txt``), its tests, and one row here.

Standard library only: the orchestration imports it without the numerical stack.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Framework:
    name: str  # as the registry and model.json spell it
    # the pyproject extra that installs its library (None: a core dependency)
    extra: str | None
    # what marks its model file in a delivered tarball or directory: file names, endings
    model_file_names: tuple[str, ...] = ()
    model_file_endings: tuple[str, ...] = ()
    # a directory holding this file is a model of the framework (TensorFlow SavedModel)
    model_directory_marker: str = ""
    trains: bool = False  # `python -m container train` fits it
    # a neural network: a missing value means nothing to it, so it refuses them unless
    # told to fill (container.model_inputs)
    network: bool = False
    # its import exports it to ONNX, verified and timed against it
    # (container.predictors.verified_export), so jobs may score it with ONNX Runtime
    onnx_export: bool = False
    # may it declare missing_values = "native"? Not a network without an imputer of
    # its own (an ONNX graph may carry one: a skl2onnx pipeline)
    native_missing_allowed: bool = True
    # seconds its import costs a scoring process before its first batch (measured on
    # the 2-core development machine): weighed against a faster path's lead
    import_seconds: float = 0.0
    # a prebuilt SageMaker framework image that can run our container code (name and
    # version for sagemaker's image URI lookup), for setups without our own image
    prebuilt_image: tuple[str, str] | None = None
    # a job that scores it beside other models needs an image carrying its library
    # (the deep-learning ones are not in every image)
    needs_its_image: bool = False
    # takes categorical features as strings (registry categorical_features)
    takes_categorical: bool = False

    @property
    def loader(self) -> str:
        """The module whose ``load(metadata, bundle_dir, threads, predictor)`` scores it."""
        return f"container.frameworks.{self.name}"

    @property
    def install_hint(self) -> str:
        """The command that installs what scoring its models needs."""
        if self.extra is None:
            return "pip install batch-inference (its core dependencies include it)"
        return f"pip install 'batch-inference[{self.extra}]'"


FRAMEWORK_TABLE: dict[str, Framework] = {row.name: row for row in (
    Framework("xgboost", extra=None, trains=True,
              model_file_names=("xgboost-model",),
              model_file_endings=(".json", ".ubj", ".model", ".bst"),
              prebuilt_image=("xgboost", "1.7-1")),
    Framework("sklearn", extra=None, trains=True, model_file_endings=(".joblib", ".pkl"),
              prebuilt_image=("sklearn", "1.2-1"), takes_categorical=True),
    Framework("lightgbm", extra="lightgbm", model_file_names=("model.txt",),
              model_file_endings=(".txt",)),
    Framework("onnx", extra="onnx", model_file_endings=(".onnx",), network=True),
    Framework("torch", extra="torch", model_file_endings=(".pt", ".pth"), network=True,
              onnx_export=True, native_missing_allowed=False, import_seconds=1.0,
              needs_its_image=True),
    Framework("tensorflow", extra="tensorflow", model_file_endings=(".keras",),
              model_directory_marker="saved_model.pb", network=True, onnx_export=True,
              native_missing_allowed=False, import_seconds=3.0, needs_its_image=True),
)}


def framework(name: str) -> Framework:
    """The row of ``name``; KeyError for a framework the table does not list (callers
    validate names against ``FRAMEWORK_TABLE`` first, with their own message)."""
    return FRAMEWORK_TABLE[name]


def names(**where: bool) -> tuple[str, ...]:
    """The frameworks whose boolean columns have the given values, in table order:
    ``names(trains=True)``, ``names(network=True)``."""
    return tuple(row.name for row in FRAMEWORK_TABLE.values()
                 if all(getattr(row, column) == value for column, value in where.items()))
