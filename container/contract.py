"""What the orchestration and the container must agree on, spelled once.

The pipeline sends a request (channels, paths, arguments) that the container reads,
and reads back what the container writes (model bundles, per-file manifests). Every
name on that boundary lives here: the ``/opt/ml`` layout, channel names, file names,
environment variables, the infer command's flags, the vocabularies (frameworks,
predictors, tasks) and the records as typed dataclasses with their JSON form.

It imports only the standard library, so the orchestration can import it without
pulling the container's numerical stack, and the container without Dagster.
Runtime behaviour (reading this instance's config, counting CPUs) is
``container.environment``.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import PurePosixPath
from typing import Any

# --- the /opt/ml layout -----------------------------------------------------------

OPT_ML = "/opt/ml"
PROCESSING_ROOT = f"{OPT_ML}/processing"
# relative to /opt/ml (or to the instance root that stands in for it)
JOB_CONFIG_FILE = "config/processingjobconfig.json"
RESOURCE_CONFIG_FILE = "config/resourceconfig.json"
FAILURE_MESSAGE_FILE = "output/message"  # SageMaker's FailureReason
MESSAGE_LIMIT_BYTES = 1024  # SageMaker keeps the first 1 KB of the message


def input_path(channel: str) -> str:
    """Where a processing input named ``channel`` is mounted in the container."""
    return f"{PROCESSING_ROOT}/input/{channel}"


def output_path(channel: str) -> str:
    """Where the container writes a processing output named ``channel``."""
    return f"{PROCESSING_ROOT}/output/{channel}"


def opt_ml_relative(container_path: str) -> str:
    """An absolute ``/opt/ml/...`` path relative to ``/opt/ml``: the local runner and
    the container put that under a per-instance root instead."""
    if container_path != OPT_ML and not container_path.startswith(OPT_ML + "/"):
        raise ValueError(f"path {container_path!r} is not under {OPT_ML}")
    return container_path[len(OPT_ML):].lstrip("/")


# --- environment variables (set by the local runner, read by the container) -------

ROOT_ENV_VAR = "BATCH_OPT_ML_ROOT"  # relocates /opt/ml, one root per local instance
NUM_CPUS_ENV_VAR = "BATCH_NUM_CPUS"  # caps the cores the engine uses

# --- channels ----------------------------------------------------------------------

DATA_INPUT = "data"  # infer: input files, listed in a manifest and sharded by key
MODEL_INPUT = "model"  # infer: the model bundle, on every instance
PREDICTIONS_OUTPUT = "predictions"  # infer: outputs and their manifests
TRAIN_INPUT = "train"  # train: Parquet files with features and the label
CONFIG_INPUT = "config"  # train: SPEC_FILE
MODEL_OUTPUT = "model"  # train: the bundle

# --- files -------------------------------------------------------------------------

METADATA_FILE = "model.json"  # ModelMetadata, written last in a bundle
SPEC_FILE = "spec.json"  # the training spec in the config input
FOLD_FILE = "linear_fold.json"  # a folded linear pipeline stored beside its artifact
ONEDAL_CACHE_FILE = "onedal_model.pkl"  # a booster converted for oneDAL, beside it
MANIFEST_DIR = "_manifests"  # per-file manifests, below the predictions output
PREDICTION_COLUMN = "prediction"  # the one column outputs add to the key columns


def manifest_relative_path(relative_input: str) -> str:
    """Where a given input file's manifest goes, relative to the output folder."""
    return f"{MANIFEST_DIR}/{PurePosixPath(relative_input).with_suffix('.json')}"


def output_relative_path(relative_input: str) -> str:
    """Where a given input file's output goes, relative to the output folder."""
    return str(PurePosixPath(relative_input).with_suffix(".parquet"))


# --- vocabularies ------------------------------------------------------------------

FRAMEWORKS = ("xgboost", "sklearn")
PREDICTORS = ("auto", "framework")  # auto: fastest predictor verified against framework
TASKS = ("binary", "multiclass", "regression")
HISTOGRAM_BINS = 10  # equal bins over [0, 1] in a manifest's prediction summary
# start of a FailureReason the orchestration does not retry: bad data or a bad model
# does not get better by running again
BAD_INPUT_PREFIX = "Bad input: "

# --- records -----------------------------------------------------------------------


def _required(cls: type) -> list[str]:
    return [f.name for f in fields(cls)
            if f.default is MISSING and f.default_factory is MISSING]


def _check_object(cls: type, raw: object) -> Mapping[str, Any]:
    """``raw`` as a mapping with every required field of ``cls``, or ValueError."""
    if not isinstance(raw, Mapping):
        raise ValueError(f"{cls.__name__} must be a JSON object, got {type(raw).__name__}")
    missing = [name for name in _required(cls) if name not in raw]
    if missing:
        raise ValueError(f"{cls.__name__} lacks field(s) {', '.join(missing)}")
    return raw


@dataclass(frozen=True)
class ModelMetadata:
    """``model.json``: what inference needs without loading the artifact, so input
    files can be checked before any compute starts."""

    name: str
    version: str
    framework: str
    features: list[str]
    key_columns: list[str]
    artifact: str  # file name of the framework's artifact, beside model.json
    categorical_features: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    training_rows: int = 0
    task: str = "binary"  # one of TASKS; bundles written before it existed are binary

    @property
    def input_columns(self) -> list[str]:
        """Columns inference reads: keys first, then features, each once."""
        return list(dict.fromkeys([*self.key_columns, *self.features]))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: object) -> ModelMetadata:
        """Strict about unknown fields: a bundle from a newer trainer may describe a
        model this container would score wrongly, so it fails instead of guessing."""
        values = _check_object(cls, raw)
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"ModelMetadata has unknown field(s) {', '.join(unknown)}")
        return cls(**values)


@dataclass(frozen=True)
class PredictionSummary:
    """Statistics of one file's predictions, so the validity and drift checks read a
    few bytes per file instead of every prediction again."""

    count: int
    nan_count: int
    min: float | None  # None when no prediction is a number
    max: float | None
    sum: float
    outside_unit_interval: int
    histogram: list[int]  # HISTOGRAM_BINS counts over [0, 1]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: object) -> PredictionSummary:
        values = _check_object(cls, raw)
        return cls(**{f.name: values[f.name] for f in fields(cls)})


@dataclass(frozen=True)
class FileManifest:
    """One input file's manifest (``_manifests/<stem>.json``), written after its output.

    Fields with defaults were added over time; older manifests lack them, and the
    orchestration reads those manifests too.
    """

    input: str  # relative to the data input
    input_bytes: int
    output: str  # relative to the predictions output
    rows_in: int
    rows_out: int
    model_name: str
    model_version: str
    host: str
    started_at: float
    finished_at: float
    job_name: str = ""
    predictions: PredictionSummary | None = None
    predictor: str | None = None  # what scored the rows (oneDAL, framework, ...)
    output_bytes: int | None = None  # size and digest of the output as published
    output_sha256: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: object) -> FileManifest:
        """Tolerant both ways: newer fields may be missing (older manifests) and
        unknown ones are ignored (a newer container's); ValueError if it is no
        manifest at all."""
        values = _check_object(cls, raw)
        known = {f.name: values[f.name] for f in fields(cls) if f.name in values}
        if known.get("predictions") is not None:
            known["predictions"] = PredictionSummary.from_dict(known["predictions"])
        return cls(**known)


DEFAULT_BATCH_ROWS = 65_536
DEFAULT_PREDICTOR = "auto"
# field -> (flag, help); the order is the order of to_argv
_INFER_FLAGS = {
    "batch_rows": ("--batch-rows", "rows per record batch (bounds memory per worker)"),
    "workers": ("--workers",
                "worker threads (default: one per core, at most one per row group)"),
    "threads_per_worker": ("--threads-per-worker",
                           "native threads per predict call (default: cores / workers)"),
    "predictor": ("--predictor",
                  "auto: the fastest predictor that matches the framework within 1e-6 on "
                  "the first batch; framework: the model's own library"),
}


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be at least 1")
    return value


@dataclass(frozen=True)
class InferArguments:
    """The ``infer`` command's options; ``None`` leaves the engine's default (derived
    from the instance's cores; DEFAULT_BATCH_ROWS; DEFAULT_PREDICTOR). The registry
    turns them into arguments and the container parses them, with the same flags."""

    batch_rows: int | None = None
    workers: int | None = None
    threads_per_worker: int | None = None
    predictor: str | None = None

    def to_argv(self) -> list[str]:
        """Command-line arguments for the options that are set."""
        arguments: list[str] = []
        for name, (flag, _help) in _INFER_FLAGS.items():
            value = getattr(self, name)
            if value is not None:
                arguments += [flag, str(value)]
        return arguments

    def resolved(self) -> InferArguments:
        """With the engine's fixed defaults filled in (workers and threads stay
        ``None``: they depend on the instance's cores and the input's row groups)."""
        return replace(self, batch_rows=self.batch_rows or DEFAULT_BATCH_ROWS,
                       predictor=self.predictor or DEFAULT_PREDICTOR)

    @staticmethod
    def add_to_parser(parser: argparse.ArgumentParser) -> None:
        """Add the options to the container's ``infer`` command."""
        for name, (flag, help_text) in _INFER_FLAGS.items():
            if name == "predictor":
                parser.add_argument(flag, choices=PREDICTORS, default=None, help=help_text)
            else:
                parser.add_argument(flag, type=_positive_int, default=None, help=help_text)

    @classmethod
    def from_namespace(cls, args: argparse.Namespace) -> InferArguments:
        return cls(**{name: getattr(args, name) for name in _INFER_FLAGS})
