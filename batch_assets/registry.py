"""The model registry: a TOML file that lists every model (see ``models.toml``).

It is read when Definitions are built (never at import) and validated whole: a
mistake names the file, the model and the field, and says what would fix it.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field, fields
from datetime import date
from pathlib import Path

from batch_assets.instance_types import vcpus
from container.contract import (
    FILL_STATISTICS,
    FRAMEWORKS,
    LOWER_IS_BETTER,
    MISSING_VALUE_POLICIES,
    NAN_PREDICTION_POLICIES,
    NATIVE_MISSING_REFUSED,
    NETWORK_FRAMEWORKS,
    PREDICTORS,
    QUALITY_METRICS,
    TASKS,
    TRAINABLE_FRAMEWORKS,
    InferArguments,
    default_missing_values,
    is_prediction_column_name,
    prediction_columns,
)
from container.framework_table import framework as table_row
from container.framework_table import names as framework_names

DEFAULT_REGISTRY_PATH = Path(__file__).with_name("models.toml")
_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
_DATASET = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,99}")
_COLUMN = re.compile(r"[^\s/]{1,200}")
# SageMaker instance types are ml.<family>.<size>: ml.m5.xlarge, ml.g4dn.xlarge, ml.m6i.metal.
NETWORK_OUTPUTS = ("probability", "logit")
_INSTANCE_TYPE = re.compile(r"ml\.[a-z][a-z0-9-]*\.[a-z0-9]+")


class RegistryError(ValueError):
    """The registry file is invalid."""


class UnknownModelError(KeyError):
    """A model name that the registry does not list."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class InferenceSettings(InferArguments):
    """The scoring engine's knobs for one model (``[models.inference]``): the options
    of the container's ``infer`` command, whose flags the contract spells; ``None``
    means the engine's default (derived from the instance's cores; ``auto`` predictor)."""

    def container_arguments(self) -> list[str]:
        """The ``infer`` arguments of this model's scoring jobs."""
        return self.to_argv()


@dataclass(frozen=True)
class ModelSpec:
    name: str
    framework: str
    dataset: str
    training_data: str  # "" for an imported model
    label: str  # "" for an imported model without holdout_data
    key_columns: tuple[str, ...]
    features: tuple[str, ...]
    instance_type: str
    instance_count: int
    quality_metric: str
    quality_threshold: float
    categorical_features: tuple[str, ...] = ()
    training_instance_type: str | None = None
    hyperparameters: dict = field(default_factory=dict)
    inference: InferenceSettings = field(default_factory=InferenceSettings)
    task: str = "binary"
    passthrough_columns: tuple[str, ...] = ()  # [models.output]: input columns copied out
    # [models.output] network_output: an imported network classifier's last layer gives
    # "probability" (default, "" here) or "logit"
    network_output: str = ""
    # an imported model: its artifact (s3:// URI or absolute local path), the model's path
    # inside a tarball or directory, Parquet holdout rows for the quality gate, and its
    # classes (multiclass) in the order of its probability outputs
    artifact: str = ""
    model_file: str = ""
    holdout_data: str = ""
    class_labels: tuple[str, ...] = ()
    # instance_count = "auto": sized per day to finish in target_minutes
    # (batch_assets.planning.sizing); instance_count then holds max_instance_count
    auto_instances: bool = False
    target_minutes: float | None = None
    # [models.inputs]: what becomes of missing feature values ("" = the framework's
    # default, container.contract.default_missing_values), the declared fill constants
    # and the statistic that fills the other features; [models.output]
    # nan_predictions ("" = "fail")
    missing_values: str = ""
    fill_values: dict = field(default_factory=dict)
    fill_statistic: str = ""
    nan_predictions: str = ""

    @property
    def resolved_missing_values(self) -> str:
        return self.missing_values or default_missing_values(self.framework)

    @property
    def imported(self) -> bool:
        return bool(self.artifact)

    @property
    def quality_threshold_is_maximum(self) -> bool:
        """Lower is better for losses and errors (logloss, rmse, mae): the threshold is
        the most a usable model may have; for scores (roc_auc, accuracy, r2) the least."""
        return self.quality_metric in LOWER_IS_BETTER

    def quality_passes(self, value: float | None) -> bool:
        """Whether a holdout metric makes the model usable (a missing or NaN one never
        does)."""
        if value is None or math.isnan(value):
            return False
        if self.quality_threshold_is_maximum:
            return value <= self.quality_threshold
        return value >= self.quality_threshold


@dataclass(frozen=True)
class Registry:
    path: Path
    partitions_start_date: str
    models: dict[str, ModelSpec]
    success_marker: str = "_SUCCESS"
    drift_psi_threshold: float = 0.2
    max_attempts: int = 4

    @property
    def datasets(self) -> dict[str, list[str]]:
        """Dataset -> names of the models that score it."""
        found: dict[str, list[str]] = {}
        for spec in self.models.values():
            found.setdefault(spec.dataset, []).append(spec.name)
        return found

    @property
    def model_names(self) -> list[str]:
        return list(self.models)

    def get(self, name: str) -> ModelSpec:
        try:
            return self.models[name]
        except KeyError:
            raise UnknownModelError(
                f"model {name!r} is not in the model registry {self.path}; registered models: "
                f"{', '.join(self.models)}. Add a [[models]] entry with this name or fix the "
                "name."
            ) from None


_REQUIRED = ("name", "framework", "dataset", "key_columns", "features", "instance_type",
             "instance_count", "quality_metric", "quality_threshold")
# a model is trained (training_data, label) or imported (artifact; the label only with
# holdout_data)
_SOURCES = ("training_data", "artifact")
_OPTIONAL = ("training_data", "label", "artifact", "model_file", "holdout_data",
             "class_labels", "categorical_features", "training_instance_type",
             "hyperparameters", "inference", "task", "output", "inputs", "target_minutes",
             "max_instance_count")
_TRAINING_ONLY = ("hyperparameters",)
_IMPORT_ONLY = ("artifact", "model_file", "holdout_data", "class_labels")


def load_registry(path: Path | str = DEFAULT_REGISTRY_PATH) -> Registry:
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise RegistryError(f"model registry {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise RegistryError(f"model registry {path} is not valid TOML: {exc}") from exc
    start = raw.get("partitions_start_date")
    try:
        date.fromisoformat(str(start))
    except ValueError:
        raise RegistryError(
            f"{path}: partitions_start_date must be a YYYY-MM-DD date, got {start!r}"
        ) from None
    entries = raw.get("models")
    if not isinstance(entries, list) or not entries:
        raise RegistryError(f"{path}: no [[models]] entries; add at least one model")
    models: dict[str, ModelSpec] = {}
    for index, entry in enumerate(entries):
        spec = _model_spec(path, index, entry)
        if spec.name in models:
            raise RegistryError(f"{path}: model name {spec.name!r} appears twice")
        models[spec.name] = spec
    marker = raw.get("success_marker", "_SUCCESS")
    if not isinstance(marker, str) or not marker or "/" in marker:
        raise RegistryError(f"{path}: success_marker must be a file name, got {marker!r}")
    psi = raw.get("drift_psi_threshold", 0.2)
    if not isinstance(psi, int | float) or psi <= 0:
        raise RegistryError(f"{path}: drift_psi_threshold must be a positive number")
    attempts = raw.get("max_attempts", 4)
    if not isinstance(attempts, int) or attempts < 1:
        raise RegistryError(f"{path}: max_attempts must be a whole number of at least 1")
    unknown = sorted(set(raw) - {"partitions_start_date", "success_marker",
                                 "drift_psi_threshold", "max_attempts", "models"})
    if unknown:
        raise RegistryError(f"{path}: unknown top-level setting(s) {', '.join(unknown)}")
    return Registry(path=path, partitions_start_date=str(start), models=models,
                    success_marker=marker, drift_psi_threshold=float(psi),
                    max_attempts=attempts)


def _model_spec(path: Path, index: int, entry: dict) -> ModelSpec:
    where = f"{path}: model #{index + 1} ({entry.get('name', '?')!r})"

    def fail(message: str) -> RegistryError:
        return RegistryError(f"{where}: {message}")

    missing = [k for k in _REQUIRED if k not in entry]
    if missing:
        raise fail(f"missing field(s) {', '.join(missing)}")
    unknown = sorted(set(entry) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise fail(f"unknown field(s) {', '.join(unknown)}; allowed: "
                   f"{', '.join(_REQUIRED + _OPTIONAL)}")
    if not isinstance(entry["name"], str) or not _NAME.fullmatch(entry["name"]):
        raise fail("name must be 1-40 lower-case letters, digits or underscores, starting "
                   "with a letter")
    imported = _source_of(entry, fail) == "artifact"
    if entry["framework"] not in (FRAMEWORKS if imported else TRAINABLE_FRAMEWORKS):
        if entry["framework"] in FRAMEWORKS:
            raise fail(f"framework {entry['framework']!r} cannot be trained here "
                       f"(training_data trains {', '.join(TRAINABLE_FRAMEWORKS)}); import a "
                       f"{entry['framework']} model instead: replace training_data with "
                       "artifact = \"s3://bucket/key\" (or a local path)")
        raise fail(f"framework {entry['framework']!r} is not one of "
                   f"{', '.join(FRAMEWORKS if imported else TRAINABLE_FRAMEWORKS)}")
    task = entry.get("task", "binary")
    if task not in TASKS:
        raise fail(f"task {task!r} is not one of {', '.join(TASKS)}")
    if not isinstance(entry["dataset"], str) or not _DATASET.fullmatch(entry["dataset"]):
        raise fail(f"dataset {entry['dataset']!r} is not a valid dataset name")
    training = entry.get("training_data", "")
    holdout = entry.get("holdout_data", "")
    for name, prefix in (("training_data", training), ("holdout_data", holdout)):
        if name in entry and (not isinstance(prefix, str) or not prefix.endswith("/")
                              or prefix.startswith("/")):
            raise fail(f"{name} must be a key prefix ending with '/', e.g. 'training/x/'")
    features = _columns(entry["features"], "features", fail)
    keys = _columns(entry["key_columns"], "key_columns", fail)
    categorical = _columns(entry.get("categorical_features", []), "categorical_features",
                           fail, allow_empty=True)
    if not set(categorical) <= set(features):
        raise fail("categorical_features must be a subset of features")
    if categorical and not table_row(entry["framework"]).takes_categorical:
        raise fail(f"categorical_features are supported for framework(s) "
                   f"{', '.join(framework_names(takes_categorical=True))} only; encode them "
                   f"upstream for {entry['framework']}")
    if set(keys) & set(features):
        raise fail("a column cannot be both a key column and a feature")
    passthrough = _passthrough(entry.get("output", {}), keys, fail)
    clashing = [c for c in (*keys, *passthrough) if is_prediction_column_name(c)]
    if clashing:
        raise fail(f"column {clashing[0]!r} would clash with the prediction columns of the "
                   "output (prediction, predicted_label, probability_<class>); rename it in "
                   "the data")
    if not imported and "label" not in entry:
        raise fail("missing field(s) label (the training data's label column)")
    label = _label(entry["label"], keys, features, fail) if "label" in entry else ""
    if holdout and not label:
        raise fail("holdout_data needs label: the holdout files' label column (e.g. "
                   "label = \"label\")")
    instance_type = _instance_type(entry["instance_type"], "instance_type", fail)
    training_instance_type = entry.get("training_instance_type")
    if training_instance_type is not None:
        training_instance_type = _instance_type(training_instance_type,
                                                "training_instance_type", fail)
    count, target_minutes = _instance_count(entry, instance_type, fail)
    metric = entry["quality_metric"]
    if metric not in QUALITY_METRICS[task]:
        raise fail(f"quality_metric {metric!r} does not fit task {task!r}; a {task} model "
                   f"is measured by one of {', '.join(QUALITY_METRICS[task])}")
    threshold = _quality_threshold(metric, entry["quality_threshold"], fail)
    hyperparameters = entry.get("hyperparameters", {})
    if not isinstance(hyperparameters, dict):
        raise fail("hyperparameters must be a table")
    artifact = _artifact(entry, path, fail) if imported else ""
    model_file = entry.get("model_file", "")
    if (not isinstance(model_file, str) or model_file.startswith("/")
            or ".." in model_file.split("/")):
        raise fail(f"model_file must be a relative path inside the artifact's tarball or "
                   f"directory, e.g. \"model/xgboost-model\", got {model_file!r}")
    class_labels = _class_labels(entry, task, imported, fail)
    return ModelSpec(
        name=entry["name"], framework=entry["framework"], dataset=entry["dataset"],
        training_data=training, label=label, key_columns=keys,
        features=features, instance_type=instance_type, instance_count=count,
        quality_metric=metric, quality_threshold=threshold,
        categorical_features=categorical,
        training_instance_type=training_instance_type,
        hyperparameters=dict(hyperparameters),
        inference=_inference(entry.get("inference", {}), fail),
        task=task,
        passthrough_columns=passthrough,
        artifact=artifact, model_file=model_file, holdout_data=holdout,
        class_labels=class_labels,
        network_output=_network_output(entry, task, fail),
        auto_instances=target_minutes is not None, target_minutes=target_minutes,
        nan_predictions=_nan_predictions(entry, fail),
        **_inputs(entry.get("inputs", {}), entry["framework"], features, categorical,
                  imported and not holdout, fail),
    )


def _inputs(value, framework: str, features: tuple[str, ...], categorical: tuple[str, ...],
            no_rows_to_measure: bool, fail) -> dict:
    """``[models.inputs]``: the missing-value policy (``MISSING_VALUE_POLICIES``) and,
    for ``fill``, a value for every feature: a constant in ``fill_values`` or the
    ``fill_statistic`` (median or mean) of the holdout (imported) or training rows."""
    if not isinstance(value, dict):
        raise fail("inputs must be a table ([models.inputs])")
    unknown = sorted(set(value) - {"missing_values", "fill_values", "fill_statistic"})
    if unknown:
        raise fail(f"inputs: unknown setting(s) {', '.join(unknown)}; allowed: "
                   "missing_values, fill_values, fill_statistic")
    policy = value.get("missing_values", "")
    if policy != "" and policy not in MISSING_VALUE_POLICIES:
        raise fail(f"inputs.missing_values must be one of {', '.join(MISSING_VALUE_POLICIES)}, "
                   f"got {policy!r}")
    if policy == "native" and framework in NATIVE_MISSING_REFUSED:
        raise fail(f"inputs.missing_values = \"native\" is not allowed for {framework} "
                   "models: a network has no native handling of missing values (NaN "
                   "propagates, or a fused kernel turns it into a number that looks right), "
                   "so use \"refuse\" (the default) or \"fill\"")
    fills = value.get("fill_values", {})
    statistic = value.get("fill_statistic", "")
    if (fills or statistic) and policy != "fill":
        raise fail("inputs.fill_values and inputs.fill_statistic go with missing_values = "
                   "\"fill\"; set it, or remove them")
    if not isinstance(fills, dict):
        raise fail("inputs.fill_values must be a table of feature = value")
    strange = sorted(set(fills) - set(features))
    if strange:
        raise fail(f"inputs.fill_values names {', '.join(strange)}, which is not a feature "
                   "of this model")
    for name, fill in fills.items():
        if name in categorical:
            if not isinstance(fill, str) or not fill:
                raise fail(f"inputs.fill_values.{name}: a categorical feature is filled with a "
                           f"category (a string), got {fill!r}")
        elif (isinstance(fill, bool) or not isinstance(fill, int | float)
              or not math.isfinite(fill)):
            raise fail(f"inputs.fill_values.{name} must be a finite number, got {fill!r}")
    if statistic and statistic not in FILL_STATISTICS:
        raise fail(f"inputs.fill_statistic must be one of {', '.join(FILL_STATISTICS)}, got "
                   f"{statistic!r}")
    if statistic and no_rows_to_measure:
        raise fail("inputs.fill_statistic is measured on the holdout rows of an imported "
                   "model: give holdout_data (and label), or fill every feature with a "
                   "constant in inputs.fill_values")
    if policy == "fill":
        uncovered = [f for f in features if f not in fills
                     and (not statistic or f in categorical)]
        if uncovered:
            raise fail(f"inputs.missing_values = \"fill\" needs a value for every feature; "
                       f"none for {', '.join(uncovered[:8])}"
                       + (f" ({len(uncovered)} in all)" if len(uncovered) > 8 else "")
                       + ": add them to inputs.fill_values, or set inputs.fill_statistic = "
                       "\"median\" (numeric features only; categorical ones need a constant)")
    return {"missing_values": policy, "fill_statistic": statistic,
            "fill_values": {name: fills[name] if isinstance(fills[name], str)
                            else float(fills[name]) for name in features if name in fills}}


def _nan_predictions(entry: dict, fail) -> str:
    """``[models.output] nan_predictions``: ``fail`` (default) or ``mark``."""
    value = entry.get("output", {}).get("nan_predictions", "")
    if value != "" and value not in NAN_PREDICTION_POLICIES:
        raise fail(f"output.nan_predictions must be one of "
                   f"{', '.join(NAN_PREDICTION_POLICIES)} (what becomes of rows the model "
                   f"returns NaN for), got {value!r}")
    return value


def _instance_count(entry: dict, instance_type: str, fail) -> tuple[int, float | None]:
    """(instances, None) for a fixed count; (max_instance_count, target_minutes) for
    ``instance_count = "auto"``."""
    count = entry["instance_count"]
    if count != "auto":
        if "target_minutes" in entry or "max_instance_count" in entry:
            raise fail("target_minutes and max_instance_count go with instance_count = "
                       "\"auto\"; with a fixed instance_count remove them")
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 100:
            raise fail(f"instance_count must be a whole number in 1..100 or \"auto\", got "
                       f"{count!r}")
        return count, None
    target = entry.get("target_minutes")
    if isinstance(target, bool) or not isinstance(target, int | float) or not target > 0:
        raise fail(f"instance_count = \"auto\" needs target_minutes, the time a day's "
                   f"scoring should take (a number > 0, e.g. 30), got {target!r}")
    largest = entry.get("max_instance_count", 10)
    if isinstance(largest, bool) or not isinstance(largest, int) or not 1 <= largest <= 100:
        raise fail(f"max_instance_count must be a whole number in 1..100, got {largest!r}")
    if vcpus(instance_type) is None:
        raise fail(f"instance_count = \"auto\" needs an instance type whose size names its "
                   f"cores (medium, large, xlarge, 2xlarge, ...), not {instance_type!r}; "
                   "give a fixed instance_count")
    return largest, float(target)


def _source_of(entry: dict, fail) -> str:
    """``training_data`` (train the model here) or ``artifact`` (import an existing one):
    exactly one, and no field of the other kind."""
    given = [name for name in _SOURCES if name in entry]
    if len(given) != 1:
        raise fail("give exactly one of training_data (a key prefix of training files: the "
                   "model is trained here) or artifact (an existing model file, "
                   "model.tar.gz or directory: the model is imported)"
                   + (", not both" if given else ""))
    source = given[0]
    foreign = [k for k in (_IMPORT_ONLY if source == "training_data" else _TRAINING_ONLY)
               if k in entry]
    if foreign:
        raise fail(f"{', '.join(foreign)} applies to "
                   f"{'imported' if source == 'training_data' else 'trained'} models only; "
                   f"this model has {source}: remove {foreign[0]}")
    return source


def _artifact(entry: dict, path: Path, fail) -> str:
    """An ``s3://bucket/key`` URI, or a local path (relative to the registry file's
    folder) made absolute."""
    value = entry["artifact"]
    if not isinstance(value, str) or not value.strip():
        raise fail(f"artifact must be an s3://bucket/key URI or a local path, got {value!r}")
    if "://" in value:
        bucket, _, key = value.removeprefix("s3://").partition("/")
        if not value.startswith("s3://") or not bucket or not key:
            raise fail(f"artifact {value!r} is not an s3://bucket/key URI (nor a local "
                       "path); e.g. \"s3://my-bucket/models/churn/model.tar.gz\"")
        return value
    return str((path.parent / Path(value).expanduser()).resolve())


def _class_labels(entry: dict, task: str, imported: bool, fail) -> tuple[str, ...]:
    """An imported multiclass model's classes, in the order of its probability outputs:
    the names of the output's probability columns (trained models take them from the
    training labels)."""
    labels = entry.get("class_labels")
    if labels is None:
        if imported and task == "multiclass":
            raise fail("an imported multiclass model needs class_labels: its classes in the "
                       "order of its probability outputs, e.g. class_labels = [\"basic\", "
                       "\"plus\", \"premium\"] (they name the probability_<class> columns)")
        return ()
    if task != "multiclass":
        raise fail(f"class_labels apply to multiclass models; this one is {task}: remove "
                   "class_labels")
    if (not isinstance(labels, list) or len(labels) < 2
            or not all(isinstance(label, str) and label for label in labels)):
        raise fail("class_labels must be a list of at least 2 class names (strings)")
    if len(set(labels)) != len(labels):
        raise fail("class_labels lists a class twice")
    try:
        prediction_columns("multiclass", labels)
    except ValueError as exc:
        raise fail(f"class_labels: {exc}") from None
    return tuple(labels)


def _quality_threshold(metric: str, value, fail) -> float:
    """Scores in [0, 1] (roc_auc, accuracy) are minimums; r2 (at most 1) is a minimum;
    losses and errors (logloss, rmse, mae: at least 0) are maximums."""
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise fail(f"quality_threshold must be a number, got {value!r}")
    if metric in ("roc_auc", "accuracy") and not 0 <= value <= 1:
        raise fail(f"quality_threshold must be a number in [0, 1] for {metric} (a minimum), "
                   f"got {value!r}")
    if metric == "r2" and value > 1:
        raise fail(f"quality_threshold for r2 is a minimum of at most 1, got {value!r}")
    if metric in LOWER_IS_BETTER and value < 0:
        raise fail(f"quality_threshold for {metric} is a maximum and must be at least 0, "
                   f"got {value!r}")
    return float(value)


def _passthrough(value, keys: tuple[str, ...], fail) -> tuple[str, ...]:
    """``[models.output] passthrough_columns``: input columns copied to every output row
    after the keys, e.g. for joining predictions back without another read."""
    if not isinstance(value, dict):
        raise fail("output must be a table ([models.output])")
    unknown = sorted(set(value) - {"passthrough_columns", "network_output",
                                   "nan_predictions"})
    if unknown:
        raise fail(f"output: unknown setting(s) {', '.join(unknown)}; allowed: "
                   "passthrough_columns, network_output, nan_predictions")
    columns = _columns(value.get("passthrough_columns", []), "output.passthrough_columns",
                       fail, allow_empty=True)
    repeated = [c for c in columns if c in keys]
    if repeated:
        raise fail(f"output.passthrough_columns lists key column {repeated[0]!r}; key "
                   "columns are in every output already")
    return columns


def _network_output(entry: dict, task: str, fail) -> str:
    """``[models.output] network_output``: only for imported networks that classify."""
    value = entry.get("output", {}).get("network_output", "")
    if value == "":
        return ""
    if value not in NETWORK_OUTPUTS:
        raise fail(f"output.network_output must be one of {', '.join(NETWORK_OUTPUTS)} (what "
                   f"the network's last layer returns), got {value!r}")
    if entry.get("framework") not in NETWORK_FRAMEWORKS or task == "regression":
        raise fail("output.network_output applies to imported torch, tensorflow and onnx "
                   f"classifiers only; remove it for this {entry.get('framework')} {task} "
                   "model")
    return value


def _columns(value, field_name: str, fail, allow_empty: bool = False) -> tuple[str, ...]:
    if not isinstance(value, list) or (not value and not allow_empty):
        raise fail(f"{field_name} must be a non-empty list of column names")
    if not all(isinstance(v, str) and _COLUMN.fullmatch(v) for v in value):
        raise fail(f"{field_name} must contain column names (strings without spaces)")
    if len(set(value)) != len(value):
        raise fail(f"{field_name} lists a column twice")
    return tuple(value)


def _label(value, keys: tuple[str, ...], features: tuple[str, ...], fail) -> str:
    """The label is one training column: a list or a key/feature column would otherwise only
    fail inside the training job, minutes later and far from the registry."""
    if not isinstance(value, str) or not _COLUMN.fullmatch(value):
        raise fail(f"label must be one column name (a string without spaces or '/'), "
                   f"got {value!r}; e.g. label = \"label\"")
    if value in keys:
        raise fail(f"label {value!r} is also a key column; the label must be its own column")
    if value in features:
        raise fail(f"label {value!r} is also a feature; remove it from features")
    return value


def _instance_type(value, field_name: str, fail) -> str:
    """SageMaker rejects a malformed instance type only when the job is submitted; catch it
    when the registry is read instead."""
    if isinstance(value, str) and _INSTANCE_TYPE.fullmatch(value):
        return value
    hint = "e.g. 'ml.m5.xlarge'"
    if (isinstance(value, str) and not value.startswith("ml.")
            and _INSTANCE_TYPE.fullmatch(f"ml.{value}")):
        hint = f"did you mean 'ml.{value}'?"
    raise fail(f"{field_name} {value!r} is not a SageMaker instance type of the form "
               f"ml.<family>.<size>; {hint}")


def _inference(value, fail) -> InferenceSettings:
    if not isinstance(value, dict):
        raise fail("inference must be a table")
    unknown = set(value) - {f.name for f in fields(InferenceSettings)}
    if unknown:
        raise fail(f"inference: unknown setting(s) {', '.join(sorted(unknown))}")
    for name, setting in value.items():
        if name == "predictor":
            if setting not in PREDICTORS:
                raise fail(f"inference.predictor must be one of {', '.join(PREDICTORS)}, "
                           f"not {setting!r}")
        elif isinstance(setting, bool) or not isinstance(setting, int) or setting < 1:
            raise fail(f"inference.{name} must be a whole number of at least 1")
    return InferenceSettings(**value)
