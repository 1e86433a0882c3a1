"""Model frameworks: one module per framework (``container/frameworks/<name>.py``),
imported only when a bundle of that framework is loaded.

Importing lazily keeps each job's start-up to the one framework it scores (PyTorch
or TensorFlow alone take seconds to import) and lets the core install, which has
only XGBoost and scikit-learn, score those without the optional extras. Each module
defines ``load(metadata, bundle_dir, threads, predictor) -> FrameworkModel``
(``container.predictors.base``). Adding a framework is its module, its requirements
file, its tests and its row in ``container.framework_table``, which names the module
(``Framework.loader``), its extra and what its import costs.

Networks (torch, tensorflow) imported with a verified ONNX export
(``container.predictors.verified_export``) are routed by what their import measured
when the job's predictor is ``auto``: ONNX Runtime alone on the export
(``container.predictors.exported``, no framework import) when it was faster, the
framework alone (no export at job start, no race) when it was not. Bundles without
those fields, and ``predictor = "framework"``, load the framework module as before.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

from container.contract import DEFAULT_BATCH_ROWS, FRAMEWORKS, PREDICTORS, ModelMetadata
from container.errors import JobInputError
from container.framework_table import framework as table_row
from container.predictors.base import FrameworkModel

log = logging.getLogger("container.frameworks")


def install_hint(framework: str) -> str:
    """The command that installs what scoring ``framework`` models needs."""
    return table_row(framework).install_hint


def load_model(metadata: ModelMetadata, bundle_dir: Path, threads: int = 1,
               predictor: str = "auto", rows: int | None = None) -> FrameworkModel:
    """Load the bundle's artifact with the module of its framework; ``rows``: the rows
    this process will score (a network's predictor choice weighs the framework's
    import against them)."""
    if predictor not in PREDICTORS:
        raise ValueError(f"predictor must be one of {PREDICTORS}, not {predictor!r}")
    framework = metadata.framework
    if framework not in FRAMEWORKS:
        raise JobInputError(
            f"model {metadata.name!r}: framework {framework!r} is not one of "
            f"{', '.join(FRAMEWORKS)}")
    if (predictor == "auto" and metadata.fastest_predictor
            and table_row(framework).onnx_export):
        predictor = _as_measured(metadata, bundle_dir, threads, rows)
        if not isinstance(predictor, str):
            return predictor
    module_name = table_row(framework).loader
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





def framework_pays_off(metadata: ModelMetadata, rows: int | None) -> bool:
    """Whether the framework, measured faster per batch at import, is worth importing
    for ``rows`` rows: its saving per row times the rows must exceed the import that
    ONNX Runtime does not need. Unknown rows: trust the import's verdict."""
    if metadata.fastest_predictor != "framework" or rows is None:
        return metadata.fastest_predictor == "framework"
    timings = metadata.predictor_timings.get(str(DEFAULT_BATCH_ROWS))
    if not timings or len(timings) != 2:
        return True
    framework_s, onnx_s = timings
    saving = (onnx_s - framework_s) / DEFAULT_BATCH_ROWS * rows
    # what importing the framework costs a scoring process before its first batch
    return saving > table_row(metadata.framework).import_seconds


def _as_measured(metadata: ModelMetadata, bundle_dir: Path, threads: int,
                 rows: int | None = None) -> FrameworkModel | str:
    """For a bundle whose import measured the fastest predictor: the verified export
    on ONNX Runtime when it won, or when the framework's per-batch lead does not repay
    its import on this shard's ``rows``; else the predictor to load the framework
    module with (``framework``; ``auto``, the job-start export and check, when the
    stored export cannot be used, logged)."""
    if not metadata.onnx_export or framework_pays_off(metadata, rows):
        return "framework"
    from container.predictors.exported import UnusableExport, load_verified

    try:
        return load_verified(metadata, bundle_dir, threads)
    except UnusableExport as exc:
        log.warning("model %s version %s: %s; exporting and checking it at job start "
                    "instead, as for bundles without an export", metadata.name,
                    metadata.version, exc)
        return "auto"
