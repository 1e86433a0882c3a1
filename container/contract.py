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
import re
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import PurePosixPath
from typing import Any

from container.framework_table import FRAMEWORK_TABLE
from container.framework_table import names as framework_names

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
CONFIG_INPUT = "config"  # train and import: SPEC_FILE
MODEL_OUTPUT = "model"  # train and import: the bundle
SOURCE_INPUT = "source"  # import: the artifact as delivered (a file, model.tar.gz or tree)
HOLDOUT_INPUT = "holdout"  # import, optional: Parquet files with features and the label

# --- files -------------------------------------------------------------------------

METADATA_FILE = "model.json"  # ModelMetadata, written last in a bundle
SPEC_FILE = "spec.json"  # the training or import spec in the config input
SCORING_PLAN_FILE = "scoring.json"  # infer, optional: the models of a multi-model job
FOLD_FILE = "linear_fold.json"  # a folded linear pipeline stored beside its artifact
ONEDAL_CACHE_FILE = "onedal_model.pkl"  # a booster converted for oneDAL, beside it
ONNX_EXPORT_FILE = "model.onnx"  # a network's ONNX export verified at import, beside it
MANIFEST_DIR = "_manifests"  # per-file manifests, below the predictions output
# a model that failed in a multi-model job while others went on: one ModelFailure per
# instance, below that model's output folder (the job itself completes)
FAILURES_DIR = "_failures"
PREDICTION_COLUMN = "prediction"  # binary and regression outputs: one float64 column
PREDICTED_LABEL_COLUMN = "predicted_label"  # multiclass: the most probable class's label
PROBABILITY_PREFIX = "probability_"  # multiclass: one float64 column per class


def manifest_relative_path(relative_input: str) -> str:
    """Where a given input file's manifest goes, relative to the output folder."""
    return f"{MANIFEST_DIR}/{PurePosixPath(relative_input).with_suffix('.json')}"


def output_relative_path(relative_input: str) -> str:
    """Where a given input file's output goes, relative to the output folder."""
    return str(PurePosixPath(relative_input).with_suffix(".parquet"))


# Small input files are packed: consecutive files of at most PACKED_FILE_MAX_ROWS rows
# (in an instance's shard, per model) share one output and one manifest, up to
# PACK_MAX_ROWS rows or PACK_MAX_FILES files. An output costs a fixed price whatever
# its rows: about a millisecond to encode, hash and publish with its manifest here,
# two PUTs on S3, and two GETs each time the orchestration tallies the day. A file of
# a thousand rows costs about that much to score, so below it the outputs, not the
# model, would set the pace (3,000 files of 100 rows took 6x the time of 8 files).
PACKED_FILE_MAX_ROWS = 1_024
PACK_MAX_ROWS = 65_536  # one output row group
PACK_MAX_FILES = 1_000  # keeps a pack's manifest small (about 80 KB)
_PACK_SUFFIX = re.compile(r"\.packed-\d+$")


def pack_stem(first_input: str, files: int) -> str:
    """The name (without suffix) of the output packing ``files`` inputs from
    ``first_input`` on: ``part-00007.packed-655``. Deterministic, so re-scoring the
    same pack overwrites it."""
    return f"{PurePosixPath(first_input).with_suffix('')}.packed-{files}"


def pack_output_relative_path(first_input: str, files: int) -> str:
    return f"{pack_stem(first_input, files)}.parquet"


def pack_manifest_relative_path(first_input: str, files: int) -> str:
    return f"{MANIFEST_DIR}/{pack_stem(first_input, files)}.json"


def is_pack_manifest_name(name: str) -> bool:
    """Whether a manifest file name (``x.packed-3.json``) is a pack's."""
    return bool(_PACK_SUFFIX.search(PurePosixPath(name).stem))


# --- output columns ----------------------------------------------------------------
# An output file is key columns + passthrough columns (copied from the input, in the
# registry's order) + the task's prediction columns below. Types are Arrow's names
# (``str(pa.float64())`` is "double"), so both sides compare them without pyarrow here.

FLOAT64 = "double"
STRING = "string"
_UNSAFE_LABEL_CHARACTERS = re.compile(r"[^A-Za-z0-9_]")


def probability_column(label: str) -> str:
    """The multiclass output column of one class: ``probability_<label>``, the label's
    characters outside [A-Za-z0-9_] replaced by ``_`` (safe in SQL, Spark and pandas)."""
    return PROBABILITY_PREFIX + _UNSAFE_LABEL_CHARACTERS.sub("_", str(label))


def prediction_columns(task: str, class_labels: list[str] | tuple[str, ...] = ()
                       ) -> list[tuple[str, str]]:
    """(name, Arrow type name) of the columns a model of ``task`` adds to each output:
    binary and regression one float64 ``prediction``; multiclass ``predicted_label``
    (string) and one float64 probability column per class, in class order. ValueError
    when two labels sanitise to the same column name (rename the classes)."""
    if task not in TASKS:
        raise ValueError(f"task {task!r} is not one of {', '.join(TASKS)}")
    if task != "multiclass":
        return [(PREDICTION_COLUMN, FLOAT64)]
    if len(class_labels) < 2:
        raise ValueError(f"a multiclass model needs at least 2 class labels, got "
                         f"{list(class_labels)}")
    columns: dict[str, str] = {}
    for label in class_labels:
        name = probability_column(label)
        if name in columns:
            raise ValueError(
                f"class labels {columns[name]!r} and {label!r} both become output column "
                f"{name!r} (characters outside [A-Za-z0-9_] become '_'); rename one of the "
                "classes in the training labels")
        columns[name] = label
    return [(PREDICTED_LABEL_COLUMN, STRING), *((name, FLOAT64) for name in columns)]


def is_prediction_column_name(name: str) -> bool:
    """Whether a column of this name could clash with a prediction column (so it cannot
    be a key or passthrough column)."""
    return name in (PREDICTION_COLUMN, PREDICTED_LABEL_COLUMN) or name.startswith(
        PROBABILITY_PREFIX)


# --- vocabularies ------------------------------------------------------------------

# frameworks the container can score, one row each in container.framework_table
FRAMEWORKS = tuple(FRAMEWORK_TABLE)
TRAINABLE_FRAMEWORKS = framework_names(trains=True)  # what `python -m container train` fits
# neural networks: a missing value has no meaning to them (NaN propagates, or a fused
# kernel turns it into a number), so they never see one (MISSING_VALUE_POLICIES)
NETWORK_FRAMEWORKS = framework_names(network=True)
# ... and of those, the ones that may not even declare missing_values = "native"
NATIVE_MISSING_REFUSED = framework_names(native_missing_allowed=False)
PREDICTORS = ("auto", "framework")  # auto: fastest predictor verified against framework
# ModelMetadata.fastest_predictor: "" = not measured at import (older bundles)
FASTEST_PREDICTORS = ("", "onnxruntime", "framework")
TASKS = ("binary", "multiclass", "regression")
# What a model's feature columns may hold where a value is missing (null or NaN):
# "native": handed to the model as NaN, which trees and scikit-learn pipelines handle
# themselves (exactly, on every predictor path); "refuse": a file with a missing value
# fails the model, naming the column and the count; "fill": replaced by the model's
# fill values (constants declared in the registry, or statistics measured at import
# or training and stored in model.json) before any predictor sees the row.
MISSING_VALUE_POLICIES = ("native", "refuse", "fill")
FILL_STATISTICS = ("median", "mean")
# What becomes of rows a model returns no number for (NaN): "fail" the model on that
# file, naming the count (nothing is written), or "mark" them: written as nulls,
# counted in the manifest, reported by predictions_valid as a warning.
NAN_PREDICTION_POLICIES = ("fail", "mark")


def default_missing_values(framework: str) -> str:
    """The policy of a model that declares none: networks refuse missing values (a
    number made from a missing value looks right and is not), the others keep their
    native handling."""
    return "refuse" if framework in NETWORK_FRAMEWORKS else "native"
HISTOGRAM_BINS = 10  # equal bins over [0, 1] in a manifest's prediction summary
# Holdout metrics per task, as training writes them into model.json and the registry's
# quality_metric names them; the first is the default. For LOWER_IS_BETTER metrics the
# registry's quality_threshold is a maximum, for the others a minimum.
QUALITY_METRICS = {
    "binary": ("roc_auc", "logloss", "accuracy"),
    "multiclass": ("accuracy", "logloss"),
    "regression": ("rmse", "mae", "r2"),
}
LOWER_IS_BETTER = frozenset({"logloss", "rmse", "mae"})
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


def _strict(cls: type, raw: object) -> Any:
    """Build ``cls`` from a JSON object, refusing fields it does not know."""
    values = _check_object(cls, raw)
    unknown = sorted(set(values) - {f.name for f in fields(cls)})
    if unknown:
        raise ValueError(f"{cls.__name__} has unknown field(s) {', '.join(unknown)}")
    return cls(**values)


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
    # multiclass: the classes in the order of the model's probability columns
    class_labels: list[str] = field(default_factory=list)
    # regression: increasing edges of the prediction histogram (holdout deciles at
    # training), the outer two bins open-ended, so drift is measured where values lie
    prediction_bin_edges: list[float] = field(default_factory=list)
    # input columns copied to every output row after the keys (registry order)
    passthrough_columns: list[str] = field(default_factory=list)
    # imported models: where the artifact came from and the SHA-256 of what was delivered
    imported_from: str = ""
    source_sha256: str = ""
    # networks (torch, tensorflow, onnx) classifying: whether the model returns
    # probabilities ("probability", the default; "" in older bundles) or logits
    # ("logit": the engine applies the sigmoid or softmax); registry [models.output]
    network_output: str = ""
    # Networks (torch, tensorflow) imported with their ONNX export made once at import
    # (container.predictors.verified_export) instead of at the start of every job.
    # Bundles written before these fields existed keep them at their defaults and score
    # as they always did: export and check at job start.
    # which predictor the import measured faster at the engine's call size:
    # "onnxruntime", "framework", or "" (not measured: an older bundle, or not a network)
    fastest_predictor: str = ""
    # the ONNX graph beside the artifact, verified against the framework; "" = none
    onnx_export: str = ""
    onnx_export_sha256: str = ""  # of that file: a changed file is not the verified one
    # largest |onnx - framework| / max(1, |framework|) accepted, and the one measured
    onnx_export_tolerance: float = 0.0
    onnx_export_max_difference: float = 0.0
    onnx_export_verified_on: str = ""  # which rows, e.g. "1,500 holdout rows"
    # whether the export also agreed on rows with missing values (TensorFlow's fused
    # kernels turn NaN into 0, ONNX Runtime keeps NaN); for the record only: a network
    # is never given a missing value (missing_values refuses or fills them)
    onnx_export_agrees_on_missing: bool = False
    # seconds per call at the import's timed sizes: {rows: [framework, onnxruntime]}
    predictor_timings: dict[str, list[float]] = field(default_factory=dict)
    onnx_export_note: str = ""  # why there is no verified export, or why it lost
    # registry [models.inputs] (MISSING_VALUE_POLICIES; "" in older bundles: the
    # framework's default, see resolved_missing_values) and, for "fill", the value of
    # every feature (declared constants, and statistics measured at import/training)
    missing_values: str = ""
    fill_values: dict[str, float | str] = field(default_factory=dict)
    fill_statistic: str = ""  # the statistic the measured fill values are (FILL_STATISTICS)
    # registry [models.output] nan_predictions (NAN_PREDICTION_POLICIES; "" = "fail")
    nan_predictions: str = ""

    @property
    def resolved_missing_values(self) -> str:
        return self.missing_values or default_missing_values(self.framework)

    @property
    def resolved_nan_predictions(self) -> str:
        return self.nan_predictions or "fail"

    @property
    def input_columns(self) -> list[str]:
        """Columns inference reads: keys, passthrough columns, then features, each once."""
        return list(dict.fromkeys([*self.key_columns, *self.passthrough_columns,
                                   *self.features]))

    def prediction_columns(self) -> list[tuple[str, str]]:
        """(name, Arrow type name) of the prediction columns of this model's outputs."""
        return prediction_columns(self.task, self.class_labels)

    def output_column_names(self) -> list[str]:
        """Every column of an output file, in order: keys, passthrough, predictions."""
        return [*self.key_columns, *self.passthrough_columns,
                *(name for name, _ in self.prediction_columns())]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: object) -> ModelMetadata:
        """Strict about unknown fields: a bundle from a newer trainer may describe a
        model this container would score wrongly, so it fails instead of guessing."""
        return _strict(cls, raw)


@dataclass(frozen=True)
class ImportSpec:
    """``spec.json`` of an import job: what the registry declares about an existing
    artifact, checked against what the artifact itself records."""

    name: str
    version: str
    framework: str
    task: str
    features: list[str]
    key_columns: list[str]
    artifact_uri: str  # as the registry names it (a local path or s3:// URI): for messages
    source_sha256: str  # of the source as delivered (a directory: its files' paths and bytes)
    label: str = ""  # the holdout's label column; "" without holdout data
    categorical_features: list[str] = field(default_factory=list)
    passthrough_columns: list[str] = field(default_factory=list)
    class_labels: list[str] = field(default_factory=list)  # multiclass: the model's class order
    model_file: str = ""  # path of the model inside a model.tar.gz or directory; "" = find it
    network_output: str = ""  # networks: "probability" (default) or "logit"
    # the registry's input and output policies (ModelMetadata's fields of these names):
    # fill_values holds the declared constants; fill_statistic fills the other features
    # with the holdout's median or mean
    missing_values: str = ""
    fill_values: dict[str, float | str] = field(default_factory=dict)
    fill_statistic: str = ""
    nan_predictions: str = ""

    # fields that go into the bundle's model.json or choose the model file: a change to
    # any of them makes another bundle from the same artifact (another version)
    DECLARED = ("framework", "task", "features", "key_columns", "categorical_features",
                "passthrough_columns", "class_labels", "model_file", "network_output")
    # declared only when set: an entry that sets none of them keeps the version it had
    # before they existed (no re-import, predictions stay fresh)
    DECLARED_WHEN_SET = ("missing_values", "fill_values", "fill_statistic",
                         "nan_predictions")

    def declared(self) -> dict[str, Any]:
        values = {name: getattr(self, name) for name in self.DECLARED}
        return values | {name: getattr(self, name) for name in self.DECLARED_WHEN_SET
                         if getattr(self, name)}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: object) -> ImportSpec:
        return _strict(cls, raw)


@dataclass(frozen=True)
class TrainingSpec:
    """``spec.json`` of a training job: the registry entry of a model trained here, and
    the version to write."""

    name: str
    version: str
    framework: str
    features: list[str]
    key_columns: list[str]
    label: str
    categorical_features: list[str] = field(default_factory=list)
    hyperparameters: dict = field(default_factory=dict)
    holdout_fraction: float = 0.2
    seed: int = 7
    task: str = "binary"
    passthrough_columns: list[str] = field(default_factory=list)
    # the registry's policies (ModelMetadata's fields of these names); fill_values: the
    # declared constants (training measures the fill statistic of the others)
    missing_values: str = ""
    fill_values: dict = field(default_factory=dict)
    fill_statistic: str = ""
    nan_predictions: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: object) -> TrainingSpec:
        """Strict, and checked: a framework this container trains, a task, a holdout
        fraction in (0, 1); ValueError naming the field otherwise."""
        spec = _strict(cls, raw)
        if spec.framework not in TRAINABLE_FRAMEWORKS:
            raise ValueError(f"training spec for {spec.name!r}: framework {spec.framework!r} "
                             f"is not one of {TRAINABLE_FRAMEWORKS}, the frameworks this "
                             "container trains")
        if spec.task not in TASKS:
            raise ValueError(f"training spec for {spec.name!r}: task {spec.task!r} is not one "
                             f"of {TASKS}")
        if not 0 < spec.holdout_fraction < 1:
            raise ValueError(f"training spec for {spec.name!r}: holdout_fraction must be in "
                             "(0, 1)")
        return spec

    def metadata(self, artifact: str, metrics: dict, rows: int,
                 class_labels: list[str] | None = None,
                 bin_edges: list[float] | None = None,
                 fill_values: dict | None = None) -> ModelMetadata:
        """The bundle's model.json; ``fill_values``: every feature's, as measured
        (``None``: the declared ones)."""
        return ModelMetadata(
            name=self.name,
            version=self.version,
            framework=self.framework,
            features=list(self.features),
            key_columns=list(self.key_columns),
            artifact=artifact,
            categorical_features=list(self.categorical_features),
            metrics=metrics,
            training_rows=rows,
            task=self.task,
            class_labels=list(class_labels or []),
            prediction_bin_edges=list(bin_edges or []),
            passthrough_columns=list(self.passthrough_columns),
            missing_values=self.missing_values,
            fill_values=dict(self.fill_values if fill_values is None else fill_values),
            fill_statistic=self.fill_statistic,
            nan_predictions=self.nan_predictions,
        )


@dataclass(frozen=True)
class PredictionSummary:
    """Statistics of one file's predictions, so the validity and drift checks read a
    few bytes per file instead of every prediction again.

    Per task (fields with defaults came with tasks; binary manifests read as before):

    * binary: ``histogram`` is HISTOGRAM_BINS counts over [0, 1];
      ``outside_unit_interval`` counts predictions that are no probability.
    * regression: ``histogram`` has ``len(bin_edges) + 1`` counts over the model's
      ``prediction_bin_edges`` (the outer two bins open-ended); no [0, 1] rule.
    * multiclass: ``count``/``nan_count`` are rows (a row with any NaN probability is
      NaN); ``min``/``max``/``sum`` and ``outside_unit_interval`` are over every
      probability; ``histogram`` counts the predicted class's probability over [0, 1];
      ``class_histograms`` holds each class's probability histogram, ``label_counts``
      the rows predicted as each class.
    """

    count: int
    nan_count: int
    min: float | None  # None when no prediction is a number
    max: float | None
    sum: float
    outside_unit_interval: int
    histogram: list[int]
    task: str = "binary"
    bin_edges: list[float] = field(default_factory=list)
    label_counts: dict[str, int] = field(default_factory=dict)
    class_histograms: dict[str, list[int]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: object) -> PredictionSummary:
        """Fields added later may be missing (older manifests); unknown ones are ignored."""
        values = _check_object(cls, raw)
        return cls(**{f.name: values[f.name] for f in fields(cls) if f.name in values})


@dataclass(frozen=True)
class PackedInput:
    """One input of a packed output: its rows are the output's next ``rows`` rows."""

    input: str
    input_bytes: int
    rows: int

    @classmethod
    def from_dict(cls, raw: object) -> PackedInput:
        return _strict(cls, raw)


@dataclass(frozen=True)
class FileManifest:
    """One output's manifest, written after the output: one input file's
    (``_manifests/<stem>.json``), or a pack of small ones (``_manifests/<first
    stem>.packed-<n>.json``, with ``packed`` listing them in output row order; then
    ``input`` is the first of them and the byte and row counts are the pack's totals).

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
    # what scored the rows: "<predictor>: <rows> rows" per predictor path that scored
    # some (oneDAL, ONNX Runtime, the framework, ...), as predictor_rows counts them
    predictor: str | None = None
    predictor_rows: dict[str, int] | None = None
    output_bytes: int | None = None  # size and digest of the output as published
    output_sha256: str | None = None
    # seconds this model's predictor spent on the file (a multi-model job reads and
    # decodes a file once for all its models; this is the model's own share)
    predict_seconds: float | None = None
    packed: list[PackedInput] | None = None  # a pack's inputs; None: one input

    @property
    def predictor_counts(self) -> dict[str, int]:
        """Rows per predictor path; an older manifest (no ``predictor_rows``) credits
        all its rows to the one predictor it names."""
        if self.predictor_rows is not None:
            return dict(self.predictor_rows)
        return {self.predictor or "unrecorded": self.rows_out}

    @property
    def covered(self) -> list[PackedInput]:
        """The inputs whose rows the output holds, in its row order."""
        if self.packed is not None:
            return self.packed
        return [PackedInput(self.input, self.input_bytes, self.rows_in)]

    def to_dict(self) -> dict[str, Any]:
        """``asdict`` without its deep copy of every value (a fifth of a millisecond
        per manifest, paid per file): the fields are numbers and strings, and the
        predictions' summary is converted on its own."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        if self.predictions is not None:
            values["predictions"] = self.predictions.to_dict()
        if self.packed is not None:
            values["packed"] = [asdict(p) for p in self.packed]
        return values

    @classmethod
    def from_dict(cls, raw: object) -> FileManifest:
        """Tolerant both ways: newer fields may be missing (older manifests) and
        unknown ones are ignored (a newer container's); ValueError if it is no
        manifest at all."""
        values = _check_object(cls, raw)
        known = {f.name: values[f.name] for f in fields(cls) if f.name in values}
        if known.get("predictions") is not None:
            known["predictions"] = PredictionSummary.from_dict(known["predictions"])
        if known.get("packed") is not None:
            if not isinstance(known["packed"], list) or not known["packed"]:
                raise ValueError("FileManifest.packed must be a non-empty list")
            known["packed"] = [PackedInput.from_dict(p) for p in known["packed"]]
        return cls(**known)


def describe_predictor_rows(rows: Mapping[str, int]) -> str:
    """``FileManifest.predictor`` (and the materialization's ``predictors``): each
    path with the rows it scored, most rows first: ``oneDAL: 39,988 rows; lightgbm
    predict (rows near a split threshold): 12 rows``."""
    ordered = sorted(rows.items(), key=lambda item: (-item[1], item[0]))
    return "; ".join(f"{path}: {count:,} rows" for path, count in ordered) or "no rows"


def add_predictor_rows(into: dict[str, int], rows: Mapping[str, int]) -> None:
    for path, count in rows.items():
        into[path] = into.get(path, 0) + count


@dataclass(frozen=True)
class ModelFailure:
    """``_failures/<host>.json`` below a model's output: why the model failed on that
    instance of a multi-model job. The job completes so the other models' work on
    every instance is kept (SageMaker stops all instances when one fails); the
    orchestration reads this to fail that model alone."""

    model: str
    host: str
    job_name: str
    message: str
    bad_input: bool  # a JobInputError: a rerun cannot fix it

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: object) -> ModelFailure:
        return _strict(cls, raw)


@dataclass(frozen=True)
class PlannedModel:
    """One model of a multi-model scoring job (``ScoringPlan``)."""

    name: str
    bundle: str  # the bundle's folder, relative to the model input
    output: str  # where its outputs and manifests go, relative to the predictions output
    # the input files (relative to the data input) this model scores; None: all of them.
    # A model already done with some files of the day skips them.
    files: list[str] | None = None
    predictor: str | None = None  # one of PREDICTORS; None: DEFAULT_PREDICTOR

    @classmethod
    def from_dict(cls, raw: object) -> PlannedModel:
        return _strict(cls, raw)


@dataclass(frozen=True)
class ScoringPlan:
    """``scoring.json`` in the config input of an ``infer`` job that scores several
    models in one pass: each input row group is read and decoded once and scored by
    every model that needs the file; outputs and manifests stay per model. Without
    this file ``infer`` scores the one bundle at the model input's root."""

    models: list[PlannedModel]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: object) -> ScoringPlan:
        values = _strict(cls, raw)
        if not isinstance(values.models, list) or not values.models:
            raise ValueError("ScoringPlan.models must be a non-empty list")
        models = [PlannedModel.from_dict(m) for m in values.models]
        names = [m.name for m in models]
        if len(set(names)) != len(names):
            raise ValueError(f"ScoringPlan names a model twice: {names}")
        bad = [m.predictor for m in models if m.predictor not in (None, *PREDICTORS)]
        if bad:
            raise ValueError(f"ScoringPlan predictor {bad[0]!r} is not one of {PREDICTORS}")
        return cls(models)


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
