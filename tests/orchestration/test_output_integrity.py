"""Outputs damaged after publication are detected and re-scored.

Each test really damages a published prediction file in the bucket (truncation,
same-size garbage) or really writes a bad statistic into a manifest, then runs the
real checks, asset and retry sensor against it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from batch_assets.automation.sensors import build_retry_sensor
from batch_assets.planning.scoring_groups import prediction_key
from batch_assets.registry import load_registry
from tests.conftest import QUIET, SMALL_DATA, Pipeline, materialization, run_checks_only
from tests.support.helpers import corrupt_data_page, read_outputs

DAY1 = SMALL_DATA.days[0]
MODEL = "churn_xgb"


def _checks(result) -> dict:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def _materialization(result) -> dict:
    return materialization(result, MODEL)


def _out_dir(pipeline: Pipeline, day: str = DAY1) -> Path:
    return pipeline.storage.root_path / f"predictions/{MODEL}/dt={day}"


def _score(pipeline: Pipeline, day: str = DAY1,
           instance: dg.DagsterInstance | None = None) -> tuple[str, str]:
    key = (day, MODEL)
    result = pipeline.score(*key, instance=instance)
    assert all(e.passed for e in _checks(result).values()), "the clean run must pass"
    return key


def _run_valid_check_only(pipeline: Pipeline, key: tuple[str, str],
                          instance: dg.DagsterInstance):
    """Only ``predictions_valid``, so the retry sensor sees no completeness failure and
    has to act on the validity check's ``repairable`` flag alone."""
    definitions = pipeline.definitions()
    job = definitions.resolve_implicit_global_asset_job_def().get_subset(
        asset_check_selection={dg.AssetCheckKey(prediction_key(key[1]),
                                                "predictions_valid")})
    result = job.execute_in_process(tags={"dagster/partition": key[0]},
                                    instance=instance, run_config=QUIET, raise_on_error=False)
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.check_name == "predictions_valid" and not evaluation.passed
    return evaluation


def _set_nan_count(pipeline: Pipeline, day: str, stem: str, nan_count: int) -> None:
    path = _out_dir(pipeline, day) / f"_manifests/{stem}.json"
    manifest = json.loads(path.read_text())
    manifest["predictions"]["nan_count"] = nan_count
    path.write_text(json.dumps(manifest))


def test_manifest_records_output_size_and_sha256_and_pages_carry_checksums(pipeline, tmp_path):
    _score(pipeline)
    out_dir = _out_dir(pipeline)
    for manifest_path in sorted((out_dir / "_manifests").glob("*.json")):
        manifest = json.loads(manifest_path.read_text())
        output = out_dir / manifest["output"]
        assert manifest["output_bytes"] == output.stat().st_size
        assert manifest["output_sha256"] == hashlib.sha256(output.read_bytes()).hexdigest()

    damaged = tmp_path / "damaged.parquet"
    shutil.copyfile(out_dir / "part-00000.parquet", damaged)
    corrupt_data_page(damaged, column=1)
    with pytest.raises(OSError, match="CRC"):
        pq.read_table(damaged, page_checksum_verification=True)


def test_truncated_output_fails_both_checks_and_rerun_rescores_only_it(pipeline):
    key = _score(pipeline)
    out_dir = _out_dir(pipeline)
    clean = read_outputs(out_dir)
    victim = out_dir / "part-00002.parquet"
    clean_victim = pq.read_table(victim)
    others = {p.name: p.read_bytes() for p in out_dir.glob("*.parquet") if p != victim}
    size = victim.stat().st_size
    os.truncate(victim, size // 2)

    checks = _checks(run_checks_only(pipeline, *key))
    complete, valid = checks["predictions_complete"], checks["predictions_valid"]
    assert not complete.passed
    assert complete.metadata["problems"].value == {
        "part-00002.parquet": f"output damaged: {size // 2} bytes, manifest says {size}"}
    assert not valid.passed
    assert set(valid.metadata["problems"].value) == {"part-00002.parquet"}
    assert valid.metadata["repairable"].value is True
    assert "repairable" in valid.description and "re-scores" in valid.description

    rerun = pipeline.score(*key)
    meta = _materialization(rerun)
    assert meta["files_scored_now"] == 1
    assert meta["files_already_done"] == SMALL_DATA.files_per_day - 1
    assert all(e.passed for e in _checks(rerun).values())
    assert pq.read_table(victim).equals(clean_victim)
    for name, data in others.items():
        assert (out_dir / name).read_bytes() == data, f"{name} was rewritten"
    repaired = read_outputs(out_dir)
    assert repaired.num_rows == clean.num_rows == len(
        set(repaired.column("customer_id").to_pylist()))
    assert repaired.sort_by("customer_id").equals(clean.sort_by("customer_id"))


def test_same_size_garbage_output_is_caught_by_its_footer(pipeline):
    key = _score(pipeline)
    victim = _out_dir(pipeline) / "part-00004.parquet"
    victim.write_bytes(os.urandom(victim.stat().st_size))

    checks = _checks(run_checks_only(pipeline, *key))
    problem = checks["predictions_complete"].metadata["problems"].value["part-00004.parquet"]
    assert problem.startswith("output damaged: ") and "no PAR1 trailer" in problem
    assert checks["predictions_valid"].metadata["repairable"].value is True

    assert _materialization(pipeline.score(*key))["files_scored_now"] == 1
    assert pq.read_metadata(victim).num_rows == SMALL_DATA.rows_per_file


def test_nan_predictions_are_not_repairable(pipeline):
    key = _score(pipeline)
    _set_nan_count(pipeline, DAY1, "part-00001", 3)
    victim = _out_dir(pipeline) / "part-00003.parquet"
    os.truncate(victim, victim.stat().st_size - 1)

    checks = _checks(run_checks_only(pipeline, *key))
    valid = checks["predictions_valid"]
    assert not valid.passed
    assert valid.metadata["problems"].value["part-00001.parquet"] == (
        "3 rows without a prediction (NaN)")
    assert valid.severity == dg.AssetCheckSeverity.ERROR  # the model's policy is "fail"
    assert valid.metadata["repairable"].value is False, "a NaN comes back on a rerun"
    assert "not repairable" in valid.description and "retrain" in valid.description
    assert set(checks["predictions_complete"].metadata["problems"].value) == {
        "part-00003.parquet"}, "a NaN is invalid, not incomplete"


def test_retry_sensor_requests_repairable_validity_failures_only(pipeline):
    instance = dg.DagsterInstance.ephemeral()
    key = _score(pipeline, DAY1, instance)
    sensor = build_retry_sensor(load_registry(pipeline.registry_path))
    resources = {"job_store": pipeline.job_store}

    _set_nan_count(pipeline, DAY1, "part-00001", 1)
    assert _run_valid_check_only(pipeline, key, instance).metadata[
        "repairable"].value is False
    invalid = sensor(dg.build_sensor_context(instance=instance, resources=resources))
    assert not invalid.run_requests, "a rerun would keep the NaN: nothing to retry"

    _set_nan_count(pipeline, DAY1, "part-00001", 0)
    os.truncate(_out_dir(pipeline, DAY1) / "part-00000.parquet", 100)
    assert _run_valid_check_only(pipeline, key, instance).metadata[
        "repairable"].value is True
    result = sensor(dg.build_sensor_context(instance=instance, cursor=invalid.cursor,
                                            resources=resources))
    (request,) = result.run_requests
    assert request.partition_key == DAY1
    assert request.run_key.startswith(f"retry-valid/{MODEL}/{DAY1}/")
    assert request.asset_selection == [prediction_key(MODEL)]

    again = sensor(dg.build_sensor_context(instance=instance, cursor=result.cursor,
                                           resources=resources))
    assert not again.run_requests, "an evaluation already acted on is not requested twice"


def test_footer_of_a_listed_but_empty_output_is_not_read(pipeline):
    """An empty object (a ranged read of one is an error on S3) is reported as damaged,
    also for manifests that predate output_bytes."""
    key = _score(pipeline)
    out_dir = _out_dir(pipeline)
    manifest_path = out_dir / "_manifests/part-00001.json"
    manifest = json.loads(manifest_path.read_text())
    del manifest["output_bytes"]
    manifest_path.write_text(json.dumps(manifest))
    (out_dir / "part-00001.parquet").write_bytes(b"")

    complete = _checks(run_checks_only(pipeline, *key))["predictions_complete"]
    assert complete.metadata["problems"].value == {
        "part-00001.parquet": "output damaged: 0 bytes, too short for a Parquet file"}
