"""The ``train`` entrypoint: fit one registered model and write its bundle.

Inputs: ``train`` (Parquet files with features and the label) and ``config``
(``spec.json``: the registry entry plus the version to write). Output: ``model``
(the bundle: artifact, then ``model.json`` last, so a bundle with metadata is
always whole).

Per task (``spec.task``): XGBoost trains ``binary:logistic``, ``multi:softprob`` or
``reg:squarederror``; scikit-learn a logistic regression (binary or multinomial) or
a ridge regression behind the same imputing, scaling and one-hot preprocessing.
Holdout metrics are the registry's quality metrics of the task
(``container.contract.QUALITY_METRICS``). ``model.json`` also records the class
labels (multiclass: the output's probability columns, in order) and, for
regression, the deciles of the holdout predictions as the bins of every scoring
job's prediction histogram (so drift is measured where the predictions lie).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from container.atomic import publish
from container.contract import (
    CONFIG_INPUT,
    FOLD_FILE,
    METADATA_FILE,
    MODEL_OUTPUT,
    ONEDAL_CACHE_FILE,
    SPEC_FILE,
    TRAIN_INPUT,
    ModelMetadata,
    TrainingSpec,
    prediction_columns,
)
from container.environment import ProcessingEnvironment, available_cpus
from container.errors import JobInputError
from container.model_bundle import write_metadata
from container.model_inputs import ModelInputs, measured_fill_values, prepared_table
from container.predictors.linear_fold import save_fold
from container.predictors.onedal_trees import save_converted
from container.schema_check import check_columns, read_input_schema

log = logging.getLogger("container.train")


def read_training_spec(path: Path) -> TrainingSpec:
    """The job's ``spec.json``; a JobInputError naming the file and the field when it
    is missing or invalid (bad input: not retried)."""
    if not path.is_file():
        raise JobInputError(f"training spec {path} is missing from the config input")
    try:
        return TrainingSpec.from_dict(json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError, ValueError) as exc:
        raise JobInputError(f"training spec {path} is invalid: {exc}") from exc


@dataclass(frozen=True)
class FittedModel:
    """A fitted estimator and what model.json records about it."""

    estimator: Any
    metrics: dict
    holdout: Any  # the holdout rows (DataFrame): where a fast predictor is checked
    class_labels: list[str]
    bin_edges: list[float]
    fill_values: dict = field(default_factory=dict)  # every feature's, under "fill"


def read_training_table(train_dir: Path, spec: TrainingSpec, what: str = "training"
                        ) -> pa.Table:
    """Read only the needed columns of every ``what`` (training, holdout) file,
    checking each file first."""
    files = sorted(p for p in train_dir.rglob("*.parquet") if p.is_file())
    if not files:
        raise JobInputError(
            f"no {what} data: no *.parquet files under the {what} input for {spec.name!r}. "
            f"Check {what}_data in the model registry."
        )
    probe = spec.metadata("", {}, 0)  # checks the features' types; the label's is _labels'
    columns = list(dict.fromkeys([*spec.features, spec.label]))
    tables = []
    for path in files:
        label = path.relative_to(train_dir).as_posix()
        if what != "training":
            label = f"{label} ({what}_data)"
        schema = read_input_schema(path, label)
        check_columns(schema, label, probe, required=columns)
        try:
            tables.append(pq.read_table(path, columns=columns))
        except (pa.ArrowException, OSError) as exc:
            raise JobInputError(f"{what} file {label} could not be read: {exc}") from exc
    return pa.concat_tables(tables, promote_options="permissive")


def _labels(table: pa.Table, spec: TrainingSpec) -> tuple[np.ndarray, list[str]]:
    """What the estimator is fit on (0/1, a class index per row, or a value) and the
    class labels (multiclass: sorted, so every framework orders them alike)."""
    column = table.column(spec.label)
    if column.null_count:
        raise JobInputError(f"label column {spec.label!r} has {column.null_count} missing "
                            "values; drop those rows or fill the labels")
    if spec.task == "multiclass":
        return _class_labels(column, spec)
    if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)
            or pa.types.is_boolean(column.type)):
        raise JobInputError(f"label column {spec.label!r} has type {column.type}; a "
                            f"{spec.task} model needs numbers")
    labels = column.to_numpy(zero_copy_only=False).astype(np.float64)
    if np.isnan(labels).any():
        raise JobInputError(f"label column {spec.label!r} has missing values")
    if spec.task == "regression":
        return labels, []
    values = set(np.unique(labels).tolist())
    if not values <= {0, 1}:
        raise JobInputError(
            f"label column {spec.label!r} must be binary 0/1 for a binary classifier; "
            f"found {sorted(values)[:5]}. For more classes set task = \"multiclass\", for "
            "a continuous target task = \"regression\" in the registry."
        )
    return labels.astype(np.int64), []


def _class_labels(column: pa.ChunkedArray, spec: TrainingSpec) -> tuple[np.ndarray, list[str]]:
    if not (pa.types.is_integer(column.type) or pa.types.is_string(column.type)
            or pa.types.is_large_string(column.type) or pa.types.is_boolean(column.type)
            or pa.types.is_dictionary(column.type)):
        raise JobInputError(
            f"label column {spec.label!r} has type {column.type}; multiclass labels must "
            "be strings or integers (class names, not measurements)")
    text = pc.cast(column, pa.string()).to_numpy(zero_copy_only=False).astype(str)
    classes, index = np.unique(text, return_inverse=True)
    if len(classes) < 3:
        raise JobInputError(
            f"label column {spec.label!r} has {len(classes)} classes {classes.tolist()}; a "
            "multiclass model needs at least 3 (for two, set task = \"binary\" with 0/1 "
            "labels)")
    try:
        prediction_columns("multiclass", classes.tolist())
    except ValueError as exc:
        raise JobInputError(f"label column {spec.label!r}: {exc}") from exc
    return index.astype(np.int64), classes.tolist()


def _split(rows: int, spec: TrainingSpec) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(spec.seed).permutation(rows)
    holdout = max(1, int(rows * spec.holdout_fraction))
    return order[holdout:], order[:holdout]


def fit_model(table: pa.Table, spec: TrainingSpec, threads: int) -> FittedModel:
    """Fit the framework's estimator for the task and measure it on the holdout rows
    (also the real rows a faster predictor is checked on before it is stored)."""
    labels, class_labels = _labels(table, spec)
    train_idx, holdout_idx = _split(table.num_rows, spec)
    fill_values, table = _filled(table, spec, train_idx)
    frame = table.select(spec.features).to_pandas()
    if spec.framework == "xgboost":
        estimator = _fit_xgboost(frame, labels, train_idx, spec, threads)
    else:
        # scikit-learn keeps class names itself (classes_), sorted as class_labels are
        targets = np.asarray(class_labels, dtype=object)[labels] if class_labels else labels
        estimator = _fit_sklearn(frame, targets, train_idx, spec)
    holdout_frame = frame.iloc[holdout_idx]
    truth = labels[holdout_idx]
    if spec.task == "regression":
        predicted = np.asarray(estimator.predict(holdout_frame), np.float64)
    else:
        predicted = np.asarray(estimator.predict_proba(holdout_frame), np.float64)
        if spec.task == "binary":
            predicted = predicted[:, 1]
    metrics = {**holdout_metrics(spec.task, truth, predicted),
               "holdout_rows": len(holdout_idx)}
    edges = decile_edges(predicted) if spec.task == "regression" else []
    return FittedModel(estimator, metrics, holdout_frame, class_labels, edges, fill_values)


def _filled(table: pa.Table, spec: TrainingSpec, train_idx: np.ndarray
            ) -> tuple[dict, pa.Table]:
    """Under ``missing_values = "fill"``: every feature's fill value (the declared
    constants; the fill statistic measured on the training split) and the table
    filled with them, so the model learns on rows as scoring will give them."""
    probe = spec.metadata("", {}, 0)
    if probe.resolved_missing_values != "fill":
        return {}, table
    values = measured_fill_values(probe, table.take(pa.array(train_idx)), "training rows")
    inputs = ModelInputs(replace(probe, fill_values=values), np.float64)
    return values, prepared_table(inputs, table, "training rows")


def holdout_metrics(task: str, truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """The task's quality metrics (``QUALITY_METRICS``) of holdout predictions:
    probabilities of class 1 (binary), per class (multiclass), or values."""
    from sklearn.metrics import (
        accuracy_score,
        log_loss,
        mean_absolute_error,
        mean_squared_error,
        r2_score,
        roc_auc_score,
    )

    if task == "regression":
        return {"rmse": float(np.sqrt(mean_squared_error(truth, predicted))),
                "mae": float(mean_absolute_error(truth, predicted)),
                "r2": float(r2_score(truth, predicted))}
    if task == "multiclass":
        # float32 probabilities sum to 1 only within float32's precision
        normalised = predicted / predicted.sum(axis=1, keepdims=True)
        return {"accuracy": float(accuracy_score(truth, np.argmax(predicted, axis=1))),
                "logloss": float(log_loss(truth, normalised,
                                          labels=list(range(predicted.shape[1]))))}
    return {"roc_auc": float(roc_auc_score(truth, predicted)),
            "logloss": float(log_loss(truth, predicted, labels=[0, 1])),
            "accuracy": float(accuracy_score(truth, predicted >= 0.5))}


def decile_edges(predictions: np.ndarray) -> list[float]:
    """The 10th..90th percentiles of the holdout predictions, without repeats: the
    edges of a regression model's prediction histogram (outer bins open-ended), so
    each bin held about a tenth of the holdout."""
    finite = predictions[np.isfinite(predictions)]
    if not len(finite):
        return []
    return np.unique(np.quantile(finite, np.linspace(0.1, 0.9, 9))).tolist()


_XGBOOST_OBJECTIVES = {"binary": "binary:logistic", "multiclass": "multi:softprob",
                       "regression": "reg:squarederror"}


def _fit_xgboost(frame, labels, train_idx, spec: TrainingSpec, threads: int):
    import xgboost as xgb

    from container.frameworks.xgboost import task_of_objective

    params = {"tree_method": "hist", "n_jobs": threads, "random_state": spec.seed,
              "objective": _XGBOOST_OBJECTIVES[spec.task]}
    params.update(spec.hyperparameters)
    if task_of_objective(params["objective"]) not in (None, spec.task):
        raise JobInputError(
            f"model {spec.name!r}: hyperparameter objective {params['objective']!r} does "
            f"not train a {spec.task} model; remove it (the task sets "
            f"{_XGBOOST_OBJECTIVES[spec.task]!r}) or change the task")
    kind = xgb.XGBRegressor if spec.task == "regression" else xgb.XGBClassifier
    estimator = kind(**params)
    estimator.fit(frame.iloc[train_idx].astype(np.float32), labels[train_idx])
    return estimator


def _fit_sklearn(frame, labels, train_idx, spec: TrainingSpec):
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    categorical = [f for f in spec.features if f in set(spec.categorical_features)]
    numeric = [f for f in spec.features if f not in set(spec.categorical_features)]
    transformers = [
        ("numeric", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric)
    ]
    if categorical:
        transformers.append(
            (
                "categorical",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value="missing"),
                    OneHotEncoder(handle_unknown="ignore"),
                ),
                categorical,
            )
        )
    if spec.task == "regression":
        model = Ridge(**{"alpha": 1.0, **spec.hyperparameters})
    else:
        model = LogisticRegression(**{"max_iter": 1000, **spec.hyperparameters})
    pipeline = Pipeline([("features", ColumnTransformer(transformers)), ("model", model)])
    pipeline.fit(frame.iloc[train_idx], labels[train_idx])
    return pipeline


def save_bundle(fitted: FittedModel, spec: TrainingSpec, rows: int, out_dir: Path,
                scratch: Path) -> ModelMetadata:
    """Write the artifact (and its fast predictor's cache), then ``model.json`` last
    (each via scratch + rename)."""
    scratch.mkdir(parents=True, exist_ok=True)
    estimator = fitted.estimator
    if spec.framework == "xgboost":
        artifact = "model.ubj"
        estimator = estimator.get_booster()
        estimator.save_model(str(scratch / artifact))
    else:
        import joblib

        artifact = "model.joblib"
        joblib.dump(estimator, scratch / artifact)
    save_fast_path_cache(spec.framework, spec.task, estimator, spec.features,
                         scratch / artifact, fitted.holdout, scratch, out_dir)
    publish(scratch / artifact, out_dir / artifact)
    metadata = spec.metadata(artifact, fitted.metrics, rows, fitted.class_labels,
                             fitted.bin_edges, fitted.fill_values or None)
    write_metadata(metadata, scratch)
    publish(scratch / METADATA_FILE, out_dir / METADATA_FILE)
    return metadata


def save_fast_path_cache(framework: str, task: str, model: Any, features: list[str],
                         artifact: Path, holdout: Any, scratch: Path, out_dir: Path) -> None:
    """Store the fast predictor's cache beside the artifact (written in ``scratch``,
    published to ``out_dir``): an XGBoost booster converted for oneDAL, or a binary
    scikit-learn pipeline's linear fold bound to ``artifact``'s digest once it agreed
    with the pipeline on the ``holdout`` rows (without holdout rows, none: scoring jobs
    fold and check on their first batch)."""
    if framework == "xgboost":
        cache = ONEDAL_CACHE_FILE if save_converted(model, scratch / ONEDAL_CACHE_FILE) else None
    elif framework == "sklearn" and task == "binary" and holdout is not None:
        cache = FOLD_FILE if save_fold(model, features, artifact, scratch / FOLD_FILE,
                                       holdout) else None
    else:
        cache = None
    if cache is not None:
        publish(scratch / cache, out_dir / cache)


def run_train(env: ProcessingEnvironment) -> ModelMetadata:
    inputs, outputs = env.channels((TRAIN_INPUT, CONFIG_INPUT), (MODEL_OUTPUT,))
    spec = read_training_spec(inputs[CONFIG_INPUT] / SPEC_FILE)
    started = time.monotonic()
    table = read_training_table(inputs[TRAIN_INPUT], spec)
    log.info("training %s (%s, %s) on %d rows", spec.name, spec.framework, spec.task,
             table.num_rows)
    fitted = fit_model(table, spec, available_cpus())
    metadata = save_bundle(fitted, spec, table.num_rows, outputs[MODEL_OUTPUT],
                           env.scratch_dir)
    log.info("trained %s version %s in %.1fs: %s", spec.name, spec.version,
             time.monotonic() - started, fitted.metrics)
    return metadata
