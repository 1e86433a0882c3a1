"""The ``import`` entrypoint: an existing model artifact becomes a versioned bundle.

Inputs: ``source`` (the artifact as delivered: one model file, a SageMaker training
output ``model.tar.gz``, or a directory tree), ``config`` (``spec.json``, an
``ImportSpec``) and, optionally, ``holdout`` (Parquet files with the features and the
label). Output: ``model``, the same bundle ``train`` writes (the model file, the fast
predictor's cache or a network's verified ONNX export where one applies, then
``model.json`` last).

Steps: extract a tarball; find the model file by the framework's conventions
(``container.framework_table``: file names, endings, a directory's marker file) or
take the spec's ``model_file``; load it once with
``container.frameworks.load_model`` (which refuses an artifact whose task, class count
or feature count contradicts the declaration); compare the feature names and class
labels the model records with the declared ones; score the holdout rows and measure
the task's metrics; for a torch or TensorFlow model, export it to ONNX once, verify
the export against the framework on the holdout rows (else on synthetic rows) and
time the two (``container.predictors.verified_export``), so scoring jobs need not.
Every failure is a ``JobInputError`` that names the artifact and
the fix, so the job fails as bad input and is not retried.

Loading a pickle (scikit-learn's joblib, ``torch.load`` without ``weights_only``) runs
code from the file. That happens here, inside the processing job (which can run
without network access), never in the Dagster process.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import tarfile
import time
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from container.atomic import publish
from container.contract import (
    CONFIG_INPUT,
    FRAMEWORKS,
    HOLDOUT_INPUT,
    METADATA_FILE,
    MODEL_OUTPUT,
    ONNX_EXPORT_FILE,
    SOURCE_INPUT,
    SPEC_FILE,
    TASKS,
    ImportSpec,
    ModelMetadata,
    TrainingSpec,
)
from container.environment import ProcessingEnvironment, available_cpus
from container.errors import JobInputError
from container.framework_table import framework as table_row
from container.frameworks import load_model
from container.model_bundle import write_metadata
from container.model_inputs import ModelInputs, measured_fill_values, prepared_table
from container.parallelism import plan_parallelism
from container.predictors.base import FrameworkModel, ModelFacts
from container.predictors.features import feature_matrix
from container.predictors.verified_export import EXPORTED_NETWORKS, export_verified
from container.train import (
    _labels,
    decile_edges,
    holdout_metrics,
    read_training_table,
    save_fast_path_cache,
)

log = logging.getLogger("container.import")

TARBALL_SUFFIXES = (".tar.gz", ".tgz", ".tar")
BUNDLE_ARTIFACT = "artifact"  # the model file's name in the bundle (+ its suffix)
_MESSAGE_PART = 300  # characters kept from each end of a library's long error
_BATCH_ROWS = 65_536


class ImportFailure(JobInputError):
    """An import failure: names the model and the artifact as the registry gives it."""

    def __init__(self, spec: ImportSpec, problem: str) -> None:
        super().__init__(f"cannot import model {spec.name!r} from {spec.artifact_uri}: "
                         f"{problem}")


def read_import_spec(path: Path) -> ImportSpec:
    if not path.is_file():
        raise JobInputError(f"import spec {path} is missing from the config input")
    try:
        spec = ImportSpec.from_dict(json.loads(path.read_text()))
    except (json.JSONDecodeError, ValueError, TypeError) as exc:
        raise JobInputError(f"import spec {path} is invalid: {exc}") from exc
    if spec.framework not in FRAMEWORKS:
        raise ImportFailure(spec, f"framework {spec.framework!r} is not one of "
                                  f"{', '.join(FRAMEWORKS)}; fix framework in the registry")
    if spec.task not in TASKS:
        raise ImportFailure(spec, f"task {spec.task!r} is not one of {', '.join(TASKS)}")
    if spec.task == "multiclass" and len(spec.class_labels) < 2:
        raise ImportFailure(spec, "a multiclass model needs class_labels in the registry: "
                                  "its classes in the order of its probability outputs")
    return spec


# --- finding the model file ----------------------------------------------------------


def _listing(root: Path, limit: int = 8) -> str:
    files = [p.relative_to(root).as_posix() for p in sorted(root.rglob("*")) if p.is_file()]
    if not files:
        return "nothing"
    shown = ", ".join(files[:limit])
    return shown if len(files) <= limit else f"{shown}, ... ({len(files)} files)"


def _convention(framework: str) -> str:
    row = table_row(framework)
    described = [*row.model_file_names, *(f"*{ending}" for ending in row.model_file_endings)]
    if row.model_directory_marker:
        described.append(f"a SavedModel directory ({row.model_directory_marker})")
    return ", ".join(described)


def model_file_candidates(root: Path, framework: str) -> list[Path]:
    """Files (and, for TensorFlow, SavedModel directories) under ``root`` that the
    framework's conventions take for its model; hidden files and folders are skipped,
    and nothing inside a model directory counts on its own."""
    row = table_row(framework)
    marker = row.model_directory_marker
    if marker and (root / marker).is_file():
        return [root]
    found = []
    for path in sorted(root.rglob("*")):
        parts = path.relative_to(root).parts
        if any(part.startswith(".") or part == "__MACOSX" for part in parts):
            continue
        by_name = path.is_file() and (path.name in row.model_file_names
                                      or path.name.endswith(row.model_file_endings))
        if by_name or (marker and (path / marker).is_file()):
            found.append(path)
    saved_models = [p for p in found if p.is_dir()]
    return [p for p in found if not any(d in p.parents for d in saved_models)]


def _is_tarball(path: Path) -> bool:
    return path.name.endswith(TARBALL_SUFFIXES)


def _extract(tarball: Path, destination: Path, spec: ImportSpec) -> None:
    """Unpack with tarfile's ``data`` filter: members outside the folder, links out of
    it and device files are refused, not written."""
    destination.mkdir(parents=True)
    try:
        with tarfile.open(tarball) as archive:
            archive.extractall(destination, filter="data")
    except tarfile.FilterError as exc:
        raise ImportFailure(spec, f"{tarball.name} was refused: member {exc}; pack the model "
                                  "with paths inside the archive (tar -czf model.tar.gz -C "
                                  "<folder> .)") from exc
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise ImportFailure(spec, f"{tarball.name} is not a readable tar archive ({exc}); "
                                  "deliver it again (tar -czf model.tar.gz <model file>)"
                            ) from exc


def locate_model(source: Path, spec: ImportSpec, scratch: Path) -> tuple[Path, str]:
    """The model file (or SavedModel directory) in the source input, and how messages
    name it: the source's one file, a file in its extracted tarball, or one in its tree."""
    entries = [p for p in source.rglob("*") if p.is_file()]
    if not entries:
        raise ImportFailure(spec, "the artifact is empty; deliver the model file")
    single = entries[0] if len(entries) == 1 and entries[0].parent == source else None
    if single is not None and not _is_tarball(single):
        if spec.model_file and spec.model_file != single.name:
            raise ImportFailure(spec, f"it is the single file {single.name}, so model_file "
                                      f"{spec.model_file!r} names nothing in it; remove "
                                      "model_file from the registry entry")
        return single, single.name
    if single is not None:
        root, container = scratch / "extracted", single.name
        _extract(single, root, spec)
    else:
        root, container = source, "the artifact's directory"
    if spec.model_file:
        path = (root / spec.model_file).resolve()
        if root.resolve() not in (path, *path.parents) or not path.exists():
            raise ImportFailure(spec, f"model_file {spec.model_file!r} is not in {container}, "
                                      f"which holds {_listing(root)}; fix model_file in the "
                                      "registry")
        return path, f"{container}: {spec.model_file}"
    candidates = model_file_candidates(root, spec.framework)
    if len(candidates) != 1:
        names = [p.relative_to(root).as_posix() or "." for p in candidates]
        problem = (f"{container} holds no {spec.framework} model file (looked for "
                   f"{_convention(spec.framework)}); it holds {_listing(root)}"
                   if not candidates else
                   f"{container} holds {len(candidates)} files that could be the "
                   f"{spec.framework} model: {', '.join(names)}")
        raise ImportFailure(spec, f"{problem}. Name the model file with model_file in the "
                                  "registry entry (its path inside the archive), or deliver "
                                  "an artifact that holds the model")
    found = candidates[0]
    return found, f"{container}: {found.relative_to(root).as_posix() or '.'}"


# --- loading and checking ------------------------------------------------------------


def _clip(text: str, part: int = _MESSAGE_PART) -> str:
    """A message on one line without native stack traces, its middle cut when long
    (SageMaker keeps the first 1 KB of a failure reason)."""
    text = " ".join(text.split("Stack trace:")[0].split())
    return text if len(text) <= 2 * part else f"{text[:part]} ... {text[-part:]}"


def _names(names: list[str], limit: int = 6) -> str:
    shown = ", ".join(names[:limit])
    return f"[{shown}]" if len(names) <= limit else f"[{shown}, ... ({len(names)} in all)]"


def load_artifact(metadata: ModelMetadata, bundle: Path, spec: ImportSpec, where: str,
                  threads: int) -> FrameworkModel:
    """The model loaded once by its framework (which checks task, class and feature
    counts); any failure names the artifact and what to do."""
    staged = str(bundle / metadata.artifact)
    try:
        return load_model(metadata, bundle, threads, predictor="framework")
    except JobInputError as exc:
        if exc.__cause__ is None:  # the module's own verdict (a declared-vs-model check)
            raise ImportFailure(spec, f"{where}: {_clip(str(exc).replace(staged, where))}"
                                ) from exc
        unreadable = exc  # the library could not read the file
    except Exception as exc:  # a damaged file makes libraries raise anything
        unreadable = exc
    said = str(unreadable) if isinstance(unreadable, JobInputError) else \
        f"{type(unreadable).__name__}: {unreadable}"
    said = _clip(said.replace(staged, where), 150)
    raise ImportFailure(
        spec, f"{where} is not a readable {spec.framework} model; deliver the model file "
              f"again (it may be damaged), or fix framework (or model_file) in the registry "
              f"({said})") from unreadable


def check_facts(facts: ModelFacts, spec: ImportSpec, where: str) -> None:
    """Feature names and class labels, where the model records them, must be the
    declared ones (``load_model`` has compared the task and the counts)."""
    declared = list(spec.features)
    if facts.feature_names is not None and list(facts.feature_names) != declared:
        recorded = list(facts.feature_names)
        how = ("the same names in another order" if sorted(recorded) == sorted(declared)
               else f"the model lacks {_names([n for n in declared if n not in recorded])}")
        raise ImportFailure(
            spec, f"{where} was trained on features {_names(recorded)}, but the registry "
                  f"declares {_names(declared)} ({how}). Set features in the registry to the "
                  "model's feature names, in the model's order")
    if (spec.task == "multiclass" and facts.class_labels is not None
            and sorted(map(str, facts.class_labels)) != sorted(spec.class_labels)):
        raise ImportFailure(
            spec, f"{where} predicts classes {_names(list(map(str, facts.class_labels)))}, "
                  f"but the registry declares class_labels {_names(spec.class_labels)}. Set "
                  "class_labels in the registry to the model's classes")


# --- holdout -------------------------------------------------------------------------


def _training_view(spec: ImportSpec) -> TrainingSpec:
    """The import spec as the training code reads labelled data."""
    return TrainingSpec(name=spec.name, version=spec.version, framework=spec.framework,
                        features=list(spec.features), key_columns=list(spec.key_columns),
                        label=spec.label, categorical_features=list(spec.categorical_features),
                        task=spec.task)


def _truth(table: pa.Table, spec: ImportSpec) -> np.ndarray:
    """The holdout labels as the metrics take them: 0/1, a value, or (multiclass) the
    index of the row's class in the declared class_labels."""
    if spec.task != "multiclass":
        return _labels(table, _training_view(spec))[0]
    column = table.column(spec.label)
    if column.null_count:
        raise ImportFailure(spec, f"holdout label column {spec.label!r} has "
                                  f"{column.null_count} missing values; fill or drop them")
    text = pc.cast(column, pa.string()).to_numpy(zero_copy_only=False).astype(str)
    unknown = sorted(set(text) - set(spec.class_labels))
    if unknown:
        raise ImportFailure(spec, f"holdout label column {spec.label!r} has classes "
                                  f"{_names(unknown)} that are not in class_labels "
                                  f"{_names(spec.class_labels)}; fix class_labels in the "
                                  "registry or the holdout data")
    index = {label: i for i, label in enumerate(spec.class_labels)}
    return np.array([index[label] for label in text], dtype=np.int64)


def prepare_holdout(inputs: ModelInputs, table: pa.Table, spec: ImportSpec) -> pa.Table:
    """The holdout's features as every scoring job prepares them (types, and missing
    values by the model's policy: a refusing model's holdout must have none)."""
    try:
        return prepared_table(inputs, table, "the holdout_data rows")
    except JobInputError as exc:
        raise ImportFailure(spec, f"{exc} (holdout_data: the import scores the holdout as "
                                  "jobs score files, so fill or drop those rows there too)"
                            ) from exc


def evaluate_holdout(model: FrameworkModel, table: pa.Table, spec: ImportSpec,
                     inputs: ModelInputs) -> tuple[dict, list[float]]:
    """The task's holdout metrics (as training measures them) and, for regression, the
    deciles of the holdout predictions (the bins of each scoring job's histogram).
    ``table``: the prepared holdout (``prepare_holdout``)."""
    truth = _truth(table, spec)
    batches = table.select(spec.features).to_batches(max_chunksize=_BATCH_ROWS)
    predicted = np.concatenate([np.asarray(model.predict(b), np.float64) for b in batches])
    width = len(spec.class_labels) if spec.task == "multiclass" else None
    expected = (table.num_rows, width) if width else (table.num_rows,)
    if predicted.shape != expected:
        raise ImportFailure(spec, f"on the holdout rows the model returned shape "
                                  f"{predicted.shape}, a {spec.task} model must return "
                                  f"{expected}; check the task and class_labels in the registry")
    unscored = np.isnan(predicted) if predicted.ndim == 1 else np.isnan(predicted).any(axis=1)
    extra = {}
    if unscored.any():
        _unscored_holdout(spec, inputs, table.select(spec.features).filter(
            pa.array(unscored)), int(unscored.sum()), table.num_rows)
        truth, predicted = truth[~unscored], predicted[~unscored]  # "mark": the rest
        extra = {"holdout_rows_without_prediction": int(unscored.sum())}
    try:
        metrics = holdout_metrics(spec.task, truth, predicted)
    except ValueError as exc:  # e.g. one class only: no ROC AUC
        raise ImportFailure(spec, f"holdout metrics could not be measured ({exc}); if the "
                                  "holdout lacks a class, give holdout_data with every "
                                  "class represented") from exc
    edges = decile_edges(predicted) if spec.task == "regression" else []
    return {**metrics, "holdout_rows": table.num_rows, **extra}, edges


def _unscored_holdout(spec: ImportSpec, inputs: ModelInputs, rows: pa.Table, count: int,
                      total: int) -> None:
    """NaN predictions on the holdout: an ImportFailure naming the cause and the fix,
    unless the model marks such rows (``nan_predictions = "mark"``)."""
    if inputs.metadata.resolved_nan_predictions == "mark":
        log.warning("the model returned no number (NaN) for %d of %d holdout rows; they "
                    "are left out of the metrics (nan_predictions = \"mark\")", count, total)
        return
    with_missing = sum(inputs.rows_with_missing(b) for b in rows.to_batches())
    if with_missing:
        cause = (f"{with_missing:,} of them have a missing feature value, which the model "
                 "does not handle (missing_values = \"native\"): declare [models.inputs] "
                 "missing_values = \"fill\" (with fill_values or fill_statistic) or "
                 "\"refuse\" in the registry, or fill them in the holdout and the data")
    else:
        cause = ("no feature value of those rows is missing: the model itself returns NaN "
                 "for them; check the model, or set [models.output] nan_predictions = "
                 "\"mark\" to write such rows with null predictions")
    raise ImportFailure(spec, f"the model returned no number (NaN) for {count:,} of the "
                              f"{total:,} holdout rows; {cause}")


# --- the entrypoint ------------------------------------------------------------------


def _stage(model_path: Path, bundle: Path) -> str:
    """Copy the model file (or SavedModel directory) into the bundle being built; its
    name there is ``artifact`` plus its suffix, never a bundle file's name."""
    suffix = "" if model_path.is_dir() else model_path.suffix
    name = BUNDLE_ARTIFACT + (suffix if re.fullmatch(r"\.[A-Za-z0-9]{1,10}", suffix) else "")
    if model_path.is_dir():
        shutil.copytree(model_path, bundle / name)
    else:
        shutil.copyfile(model_path, bundle / name)
    return name


def run_import(env: ProcessingEnvironment) -> ModelMetadata:
    inputs, outputs = env.channels((SOURCE_INPUT, CONFIG_INPUT), (MODEL_OUTPUT,))
    spec = read_import_spec(inputs[CONFIG_INPUT] / SPEC_FILE)
    holdout = env.inputs().get(HOLDOUT_INPUT)
    started = time.monotonic()
    scratch = env.scratch_dir / "import"
    bundle = scratch / "bundle"
    bundle.mkdir(parents=True, exist_ok=True)
    model_path, where = locate_model(inputs[SOURCE_INPUT], spec, scratch)
    artifact = _stage(model_path, bundle)
    metadata = ModelMetadata(
        name=spec.name, version=spec.version, framework=spec.framework,
        features=list(spec.features), key_columns=list(spec.key_columns), artifact=artifact,
        categorical_features=list(spec.categorical_features), task=spec.task,
        class_labels=list(spec.class_labels),
        passthrough_columns=list(spec.passthrough_columns),
        imported_from=spec.artifact_uri, source_sha256=spec.source_sha256,
        network_output=spec.network_output, missing_values=spec.missing_values,
        fill_values=dict(spec.fill_values), fill_statistic=spec.fill_statistic,
        nan_predictions=spec.nan_predictions)
    log.info("importing %s (%s, %s) from %s (%s)", spec.name, spec.framework, spec.task,
             spec.artifact_uri, where)
    # networks: loaded with the threads of one worker of a scoring job with at least as
    # many row groups as cores, so the export is timed against the framework as a job
    # calls them (container.predictors.verified_export)
    cpus = available_cpus()
    threads = (plan_parallelism(cpus, cpus).threads_per_worker
               if spec.framework in EXPORTED_NETWORKS else cpus)
    model = load_artifact(metadata, bundle, spec, where, threads)
    check_facts(model.facts(), spec, where)
    holdout_rows = None
    holdout_matrix = None
    table = None
    if holdout is not None:
        table = read_training_table(holdout.local_path, _training_view(spec), what="holdout")
    try:
        fill_values = measured_fill_values(metadata, table, "holdout rows")
    except JobInputError as exc:
        raise ImportFailure(spec, str(exc)) from exc
    metadata = replace(metadata, fill_values=fill_values or metadata.fill_values)
    inputs = ModelInputs(metadata, model.feature_precision)
    if table is not None:
        table = prepare_holdout(inputs, table, spec)
        metrics, edges = evaluate_holdout(model, table, spec, inputs)
        metadata = replace(metadata, metrics=metrics, prediction_bin_edges=edges)
        log.info("holdout metrics of %s: %s", spec.name, metrics)
        holdout_rows = table.select(spec.features).to_pandas()
        if spec.framework in EXPORTED_NETWORKS:  # as the engine prepares rows
            holdout_matrix = np.concatenate(
                [feature_matrix(b, list(spec.features))
                 for b in table.select(spec.features).to_batches()]
                or [np.empty((0, len(spec.features)), np.float32)])
    if spec.framework in EXPORTED_NETWORKS:
        metadata = replace(metadata, **export_verified(model, metadata, bundle,
                                                       holdout_matrix, threads))
    out_dir = outputs[MODEL_OUTPUT]
    native = {"xgboost": "booster", "sklearn": "estimator"}.get(spec.framework)
    if native is not None:
        save_fast_path_cache(spec.framework, spec.task, getattr(model, native),
                             list(spec.features), bundle / artifact, holdout_rows, bundle,
                             out_dir)
    if metadata.onnx_export:
        publish(bundle / ONNX_EXPORT_FILE, out_dir / ONNX_EXPORT_FILE)
    publish(bundle / artifact, out_dir / artifact)
    write_metadata(metadata, bundle)
    publish(bundle / METADATA_FILE, out_dir / METADATA_FILE)
    log.info("imported %s version %s in %.1fs", spec.name, spec.version,
             time.monotonic() - started)
    return metadata
