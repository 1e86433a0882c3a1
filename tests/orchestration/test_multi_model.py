"""Many models, one pass: one processing job per dataset-day scores every selected model."""

from __future__ import annotations

import shutil

import pyarrow.parquet as pq
import pytest

from batch_assets.planning.model_pointer import read_current_model
from batch_assets.planning.scoring_groups import group_of, scoring_groups
from batch_assets.registry import load_registry
from resources.processing import LocalProcessing
from tests.conftest import SMALL_DATA, check_evaluations, make_pipeline, materialization
from tests.support.helpers import read_outputs
from tests.support.registries import edit_registry
from tests.support.registries import model as registry_model

DAY = SMALL_DATA.days[0]
MODELS = ("churn_xgb", "churn_logreg", "customer_value_xgb")


def _outputs(pipeline, model):
    return read_outputs(pipeline.storage.root_path / f"predictions/{model}/dt={DAY}")


def test_one_job_scores_every_selected_model_like_single_model_jobs(pipeline, tmp_path,
                                                                   trained_template):
    pipeline.processing = LocalProcessing(**{**pipeline.processing.model_dump(),
                                                 "instance_prices": {"ml.m5.xlarge": 0.5}})
    result = pipeline.score(DAY, *MODELS)
    metas = {model: materialization(result, model) for model in MODELS}
    (attempt,) = pipeline.attempts(DAY, "churn_xgb")
    assert attempt.status == "Completed"
    for model, meta in metas.items():
        assert meta["job_name"] == attempt.job_name
        assert meta["models_in_job"] == 3
        assert meta["files_scored_now"] == SMALL_DATA.files_per_day
        assert meta["model_version"] == read_current_model(pipeline.storage, model).version
        assert meta["predict_seconds"] > 0
        checks = check_evaluations(result, model)
        assert checks["predictions_complete"].passed and checks["predictions_valid"].passed
    # cost: the job's instance-seconds at the listed price, shared by predict seconds
    first = metas["churn_xgb"]
    assert first["billed_instance_seconds"] == pytest.approx(2 * first["seconds"], abs=0.2)
    job_usd = first["job_estimated_cost_usd"]
    assert job_usd == pytest.approx(first["billed_instance_seconds"] / 3600 * 0.5, abs=1e-4)
    # each share is shown to 0.001: three of them sum to 1 within 3 x 0.0005
    assert sum(m["cost_share"] for m in metas.values()) == pytest.approx(1.0, abs=2e-3)
    assert sum(m["estimated_cost_usd"] for m in metas.values()) == pytest.approx(job_usd,
                                                                                abs=1e-3)
    assert all(m["day_estimated_cost_usd"] == job_usd for m in metas.values())
    assert all(m["day_scoring_jobs"] == 1 for m in metas.values())
    # a job per model, in a copy of the same bucket, writes the same predictions
    shutil.copytree(trained_template, tmp_path / "single" / "bucket")
    single = make_pipeline(tmp_path / "single", pipeline.registry_path)
    for model in MODELS:
        materialization(single.score(DAY, model), model)
        assert _outputs(single, model).equals(_outputs(pipeline, model)), model
    assert len(single.attempts(DAY, "churn_xgb")) == len(MODELS)


def test_a_new_version_of_one_model_rescores_only_that_model(pipeline):
    pipeline.score(DAY, *MODELS)
    pipeline.run_job("train_models", "churn_logreg")  # a new version of one model
    result = pipeline.score(DAY, *MODELS)
    metas = {model: materialization(result, model) for model in MODELS}
    assert metas["churn_logreg"]["files_scored_now"] == SMALL_DATA.files_per_day
    assert metas["churn_logreg"]["models_in_job"] == 1
    for model in ("churn_xgb", "customer_value_xgb"):
        assert metas[model]["nothing_to_do"] is True
        assert metas[model]["files_scored_now"] == 0
    assert len(pipeline.attempts(DAY, "churn_xgb")) == 2


def test_a_bad_artifact_costs_none_of_the_other_models_outputs(pipeline):
    """On every instance the bad model drops out and the others finish: two instances,
    so without the per-model failure records one instance's failure would stop the
    other mid-way (as SageMaker does)."""
    bundle = pipeline.storage.root_path / read_current_model(pipeline.storage,
                                                             "churn_logreg").prefix
    artifact = bundle / "model.joblib"
    original = artifact.read_bytes()
    artifact.write_bytes(b"not a joblib file")

    result = pipeline.score(DAY, *MODELS, raise_on_error=False)
    assert not result.success
    message = result.get_step_failure_events()[0].step_failure_data.error.message
    assert "churn_logreg" in message and "not materialized" in message
    for model in ("churn_xgb", "customer_value_xgb"):
        assert materialization(result, model)["files_scored_now"] == SMALL_DATA.files_per_day
        assert _outputs(pipeline, model).num_rows == SMALL_DATA.files_per_day * \
            SMALL_DATA.rows_per_file
    assert not list((pipeline.storage.root_path /
                     f"predictions/churn_logreg/dt={DAY}").rglob("*.parquet"))
    assert "not a readable scikit-learn model" in message and "[bad input: not retried]" \
        in message
    # the job completed (SageMaker would stop every instance of a failed job, costing the
    # other models the files still being scored); each instance recorded the model's
    # failure below its outputs
    (attempt,) = pipeline.attempts(DAY, "churn_xgb")
    assert attempt.status == "Completed"
    failures = sorted((pipeline.storage.root_path /
                       f"predictions/churn_logreg/dt={DAY}/_failures").glob("*.json"))
    assert [p.name for p in failures] == ["algo-1.json", "algo-2.json"]

    artifact.write_bytes(original)
    again = pipeline.score(DAY, *MODELS)
    metas = {model: materialization(again, model) for model in MODELS}
    assert metas["churn_logreg"]["files_scored_now"] == SMALL_DATA.files_per_day
    assert metas["churn_logreg"]["models_in_job"] == 1
    assert metas["churn_xgb"]["nothing_to_do"] is True


def test_partial_selection_scores_only_the_selected_model(pipeline):
    result = pipeline.score(DAY, "customer_value_xgb")
    assert [e.asset_key.path[-1] for e in result.get_asset_materialization_events()] == [
        "customer_value_xgb"]
    assert materialization(result, "customer_value_xgb")["models_in_job"] == 1
    assert not (pipeline.storage.root_path / "predictions/churn_xgb").exists()
    table = _outputs(pipeline, "customer_value_xgb")
    assert table.column_names == ["customer_id", "segment", "prediction"]
    first = sorted((pipeline.storage.root_path /
                    f"predictions/customer_value_xgb/dt={DAY}").glob("*.parquet"))[0]
    assert pq.read_metadata(first).num_rows == SMALL_DATA.rows_per_file


def test_models_on_another_instance_type_get_their_own_step(tmp_path, pipeline):
    # tier_xgb moves to another instance type
    path = edit_registry(tmp_path / "split.toml", lambda data: registry_model(
        data, "tier_xgb").update(instance_type="ml.c5.2xlarge"), source=pipeline.registry_path)
    registry = load_registry(path)
    groups = {g.name: g.models for g in scoring_groups(registry)}
    assert groups == {
        "score_customers__m5_xlarge": ("churn_xgb", "churn_logreg", "customer_value_xgb"),
        "score_customers__c5_2xlarge": ("tier_xgb",),
    }
    assert group_of(registry, "tier_xgb").instance_type == "ml.c5.2xlarge"
