"""Shared fixtures: a small demo data set, a test registry, local resources.

Training is the slowest step, so one session-wide bucket is trained once and
each test gets its own copy of it (and its own job store and job folders).
"""

from __future__ import annotations

import shutil
import tomllib
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from batch_assets.definitions import build_definitions
from batch_assets.dev.demo_data import DemoDataSpec, generate_demo_data
from batch_assets.planning.scoring_groups import group_of, model_of, prediction_key
from batch_assets.registry import DEFAULT_REGISTRY_PATH, load_registry
from resources.job_store import SQLiteJobStore
from resources.processing import LocalProcessing
from resources.storage import LocalBucketStorage
from tests.support.registries import edit_registry, entries
from tests.support.registries import model as registry_model

SMALL_DATA = DemoDataSpec(
    days=("2026-11-01", "2026-11-02"),
    files_per_day=5,
    rows_per_file=2_000,
    training_rows=6_000,
)
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


# A test-only multiclass model (the shipped registry has binary and regression ones):
# an XGBoost classifier of the training data's three tiers, with passthrough columns.
MULTICLASS_MODEL = """
[[models]]
name = "tier_xgb"
framework = "xgboost"
task = "multiclass"
dataset = "customers"
training_data = "training/customers/"
label = "tier"
key_columns = ["customer_id"]
features = ["f04", "f05", "f06", "f07", "f08", "f09"]
instance_type = "ml.m5.xlarge"
instance_count = 1
quality_metric = "accuracy"
quality_threshold = 0.5

[models.output]
passthrough_columns = ["segment", "f06"]

[models.hyperparameters]
n_estimators = 15
max_depth = 3
"""


def write_test_registry(path: Path, xgb_inference: str = "", instance_count: int = 2,
                        multiclass: bool = True) -> Path:
    """The shipped registry with smaller models (fast to train) and the given overrides
    (``xgb_inference`` for churn_xgb; ``instance_count`` for the churn models), plus the
    test-only multiclass model unless ``multiclass`` is false."""
    def edit(data: dict) -> None:
        for entry in data["models"]:  # boosted trees of at most 20 rounds train fast
            rounds = entry.get("hyperparameters", {}).get("n_estimators")
            if rounds is not None:
                entry["hyperparameters"]["n_estimators"] = min(rounds, 20)
        for name in ("churn_xgb", "churn_logreg"):
            registry_model(data, name)["instance_count"] = instance_count
        if xgb_inference:
            registry_model(data, "churn_xgb")["inference"] = tomllib.loads(xgb_inference)
        if multiclass:
            data["models"].extend(entries(MULTICLASS_MODEL))

    return edit_registry(path, edit, source=DEFAULT_REGISTRY_PATH)


@dataclass
class Pipeline:
    """Everything a test needs to run the pipeline in its own folder."""

    root: Path
    registry_path: Path
    storage: LocalBucketStorage
    job_store: SQLiteJobStore
    processing: LocalProcessing

    @property
    def resources(self) -> dict:
        return {"storage": self.storage, "job_store": self.job_store,
                "processing": self.processing}

    def definitions(self) -> dg.Definitions:
        return build_definitions(self.registry_path, self.resources)

    def run_job(self, job: str, partition_key: str, raise_on_error: bool = True,
                instance: dg.DagsterInstance | None = None, tags: dict | None = None,
                asset_selection: list[dg.AssetKey] | None = None):
        return self.definitions().resolve_job_def(job).execute_in_process(
            partition_key=partition_key, instance=instance or dg.DagsterInstance.ephemeral(),
            run_config=QUIET, raise_on_error=raise_on_error, tags=tags,
            asset_selection=asset_selection,
        )

    def score(self, day: str, *models: str, raise_on_error: bool = True,
              instance: dg.DagsterInstance | None = None, tags: dict | None = None):
        """Run ``score_predictions`` for ``day`` with these models' predictions selected
        (one step and one processing job per scoring group)."""
        return self.run_job("score_predictions", day, raise_on_error, instance, tags,
                            [prediction_key(model) for model in models])

    def attempts(self, day: str, model: str) -> list:
        """The job store's attempts of the day's scoring step that scores ``model``."""
        group = group_of(load_registry(self.registry_path), model)
        return self.job_store.attempts(group.name, day)


def materialization(result, model: str) -> dict:
    """The metadata values of ``model``'s predictions materialization in ``result``."""
    (event,) = [e for e in result.get_asset_materialization_events()
                if e.asset_key == prediction_key(model)]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def check_evaluations(result, model: str | None = None) -> dict:
    """Check name -> evaluation in ``result`` (of ``model``'s predictions, if given)."""
    return {e.check_name: e for e in result.get_asset_check_evaluations()
            if model is None or e.asset_key == prediction_key(model)}


def make_pipeline(root: Path, registry_path: Path, bucket: Path | None = None) -> Pipeline:
    return Pipeline(
        root=root,
        registry_path=registry_path,
        storage=LocalBucketStorage(root=str(bucket or root / "bucket")),
        job_store=SQLiteJobStore(path=str(root / "jobs.sqlite3")),
        processing=LocalProcessing(
            work_dir=str(root / "processing"), poll_interval_seconds=0.1,
            stop_grace_seconds=2.0,
        ),
    )


@pytest.fixture(scope="session")
def moto_endpoint():
    """URL of a moto server (S3 + DynamoDB + SageMaker) shared by the session."""
    from tests.support.aws import moto_server

    with moto_server() as url:
        yield url


@pytest.fixture(scope="session")
def trained_template(tmp_path_factory) -> Path:
    """A bucket with small demo data and every test model trained (built once per
    session)."""
    root = tmp_path_factory.mktemp("template")
    registry = write_test_registry(root / "models.toml")
    pipeline = make_pipeline(root, registry)
    generate_demo_data(pipeline.storage, SMALL_DATA)
    for model in load_registry(registry).model_names:
        pipeline.run_job("train_models", model)
    return root / "bucket"


@pytest.fixture
def pipeline(tmp_path, trained_template) -> Pipeline:
    """A private copy of the trained bucket with a fresh job store."""
    shutil.copytree(trained_template, tmp_path / "bucket")
    return make_pipeline(tmp_path, write_test_registry(tmp_path / "models.toml"))


def run_checks_only(pipeline: Pipeline, day: str, model: str,
                    instance: dg.DagsterInstance | None = None):
    """Run a model's predictions checks alone on one day, as the UI's "Execute checks".

    A check-only asset job has no partitions definition in Dagster 1.13, so the
    partition is given by the run's partition tag, as the UI does.
    """
    definitions = pipeline.definitions()
    checks = {key for key in definitions.resolve_asset_graph().asset_check_keys
              if model_of(key.asset_key) == model}
    job = definitions.resolve_implicit_global_asset_job_def().get_subset(
        asset_check_selection=checks
    )
    return job.execute_in_process(
        tags={"dagster/partition": day},
        instance=instance or dg.DagsterInstance.ephemeral(),
        run_config=QUIET, raise_on_error=False,
    )
