"""The ``train`` entrypoint: fit one registered model and write its bundle.

Inputs: ``train`` (Parquet files with features and the label) and ``config``
(``spec.json``: the registry entry plus the version to write). Output: ``model``
(the bundle: artifact, then ``model.json`` last, so a bundle with metadata is
always whole).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from container.atomic import publish
from container.contract import (
    CONFIG_INPUT,
    FOLD_FILE,
    FRAMEWORKS,
    METADATA_FILE,
    MODEL_OUTPUT,
    ONEDAL_CACHE_FILE,
    SPEC_FILE,
    TRAIN_INPUT,
    ModelMetadata,
)
from container.environment import ProcessingEnvironment, available_cpus
from container.errors import JobInputError
from container.linear_fold import save_fold
from container.model_bundle import write_metadata
from container.onedal_trees import save_converted
from container.schema_check import check_columns, read_input_schema

log = logging.getLogger("container.train")


@dataclass(frozen=True)
class TrainingSpec:
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

    @classmethod
    def read(cls, path: Path) -> TrainingSpec:
        if not path.is_file():
            raise JobInputError(f"training spec {path} is missing from the config input")
        try:
            spec = cls(**json.loads(path.read_text()))
        except (json.JSONDecodeError, TypeError) as exc:
            raise JobInputError(f"training spec {path} is invalid: {exc}") from exc
        if spec.framework not in FRAMEWORKS:
            raise JobInputError(
                f"training spec for {spec.name!r}: framework {spec.framework!r} is not one of "
                f"{FRAMEWORKS}"
            )
        if not 0 < spec.holdout_fraction < 1:
            raise JobInputError(
                f"training spec for {spec.name!r}: holdout_fraction must be in (0, 1)"
            )
        return spec

    def metadata(self, artifact: str, metrics: dict, rows: int) -> ModelMetadata:
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
        )


def read_training_table(train_dir: Path, spec: TrainingSpec) -> pa.Table:
    """Read only the needed columns of every training file, checking each file first."""
    files = sorted(p for p in train_dir.rglob("*.parquet") if p.is_file())
    if not files:
        raise JobInputError(
            f"no training data: no *.parquet files under the train input for {spec.name!r}. "
            "Check training_data in the model registry."
        )
    probe = spec.metadata("", {}, 0)
    columns = list(dict.fromkeys([*spec.features, spec.label]))
    tables = []
    for path in files:
        label = path.relative_to(train_dir).as_posix()
        schema = read_input_schema(path, label)
        check_columns(schema, label, probe, required=columns)
        try:
            tables.append(pq.read_table(path, columns=columns))
        except (pa.ArrowException, OSError) as exc:
            raise JobInputError(f"training file {label} could not be read: {exc}") from exc
    return pa.concat_tables(tables, promote_options="permissive")


def _labels(table: pa.Table, spec: TrainingSpec) -> np.ndarray:
    labels = table.column(spec.label).to_numpy(zero_copy_only=False)
    if np.isnan(labels.astype(np.float64)).any():
        raise JobInputError(f"label column {spec.label!r} has missing values")
    values = set(np.unique(labels).tolist())
    if not values <= {0, 1}:
        raise JobInputError(
            f"label column {spec.label!r} must be binary 0/1 for a classifier; "
            f"found {sorted(values)[:5]}"
        )
    return labels.astype(np.int64)


def _split(rows: int, spec: TrainingSpec) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(spec.seed).permutation(rows)
    holdout = max(1, int(rows * spec.holdout_fraction))
    return order[holdout:], order[:holdout]


def fit_model(table: pa.Table, spec: TrainingSpec, threads: int):
    """Fit the framework's estimator; returns (estimator, holdout metrics, holdout
    rows: the real rows a faster predictor is checked on before it is stored)."""
    from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

    labels = _labels(table, spec)
    train_idx, holdout_idx = _split(table.num_rows, spec)
    frame = table.select(spec.features).to_pandas()
    if spec.framework == "xgboost":
        estimator = _fit_xgboost(frame, labels, train_idx, spec, threads)
    else:
        estimator = _fit_sklearn(frame, labels, train_idx, spec)
    holdout_frame = frame.iloc[holdout_idx]
    probabilities = estimator.predict_proba(holdout_frame)[:, 1]
    truth = labels[holdout_idx]
    metrics = {
        "roc_auc": float(roc_auc_score(truth, probabilities)),
        "log_loss": float(log_loss(truth, probabilities, labels=[0, 1])),
        "accuracy": float(accuracy_score(truth, probabilities >= 0.5)),
        "holdout_rows": len(holdout_idx),
    }
    return estimator, metrics, holdout_frame


def _fit_xgboost(frame, labels, train_idx, spec: TrainingSpec, threads: int):
    import xgboost as xgb

    params = {"tree_method": "hist", "n_jobs": threads, "random_state": spec.seed}
    params.update(spec.hyperparameters)
    estimator = xgb.XGBClassifier(**params)
    estimator.fit(frame.iloc[train_idx].astype(np.float32), labels[train_idx])
    return estimator


def _fit_sklearn(frame, labels, train_idx, spec: TrainingSpec):
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
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
    params = {"max_iter": 1000}
    params.update(spec.hyperparameters)
    pipeline = Pipeline(
        [("features", ColumnTransformer(transformers)), ("model", LogisticRegression(**params))]
    )
    pipeline.fit(frame.iloc[train_idx], labels[train_idx])
    return pipeline


def save_bundle(estimator, spec: TrainingSpec, metrics: dict, rows: int, out_dir: Path,
                scratch: Path, holdout=None) -> ModelMetadata:
    """Write the artifact, then ``model.json`` last (both via scratch + rename)."""
    scratch.mkdir(parents=True, exist_ok=True)
    if spec.framework == "xgboost":
        artifact = "model.ubj"
        estimator.get_booster().save_model(str(scratch / artifact))
        if save_converted(estimator.get_booster(), scratch / ONEDAL_CACHE_FILE):
            publish(scratch / ONEDAL_CACHE_FILE, out_dir / ONEDAL_CACHE_FILE)
    else:
        import joblib

        artifact = "model.joblib"
        joblib.dump(estimator, scratch / artifact)
        if save_fold(estimator, spec.features, scratch / artifact, scratch / FOLD_FILE,
                     holdout):
            publish(scratch / FOLD_FILE, out_dir / FOLD_FILE)
    publish(scratch / artifact, out_dir / artifact)
    metadata = spec.metadata(artifact, metrics, rows)
    write_metadata(metadata, scratch)
    publish(scratch / METADATA_FILE, out_dir / METADATA_FILE)
    return metadata


def run_train(env: ProcessingEnvironment) -> ModelMetadata:
    inputs, outputs = env.channels((TRAIN_INPUT, CONFIG_INPUT), (MODEL_OUTPUT,))
    spec = TrainingSpec.read(inputs[CONFIG_INPUT] / SPEC_FILE)
    started = time.monotonic()
    table = read_training_table(inputs[TRAIN_INPUT], spec)
    log.info("training %s (%s) on %d rows", spec.name, spec.framework, table.num_rows)
    estimator, metrics, holdout = fit_model(table, spec, available_cpus())
    metadata = save_bundle(
        estimator, spec, metrics, table.num_rows, outputs[MODEL_OUTPUT],
        env.scratch_dir, holdout,
    )
    log.info("trained %s version %s in %.1fs: %s", spec.name, spec.version,
             time.monotonic() - started, metrics)
    return metadata
