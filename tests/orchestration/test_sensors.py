"""Sensors: new data (local and S3 storage) and retries driven by failed checks."""

from __future__ import annotations

import uuid

import boto3
import dagster as dg
from dagster_aws.s3 import S3Resource

from batch_assets.automation.sensors import build_new_data_sensor, build_retry_sensor
from batch_assets.planning.scoring_groups import prediction_key
from batch_assets.registry import load_registry
from resources.s3_storage import S3BucketStorage
from resources.storage import LocalBucketStorage
from tests.conftest import SMALL_DATA, materialization, run_checks_only
from tests.support.aws import REGION
from tests.support.registries import edit_registry, setting

MODELS = ["churn_xgb", "churn_logreg"]


def tick(sensor, storage, cursor=None):
    with dg.build_sensor_context(cursor=cursor, resources={"storage": storage}) as context:
        return sensor(context)


def deliver(storage, day, files, marker=True, size=10):
    for index in files:
        storage.write_bytes(f"data/customers/dt={day}/part-{index:05d}.parquet", b"p" * size)
    if marker:
        storage.write_bytes(f"data/customers/dt={day}/_SUCCESS", b"")


def keys_of(result) -> set[tuple[str, str]]:
    return {(r.partition_key, r.run_key) for r in result.run_requests or []}


def test_new_data_sensor_ticks(tmp_path):
    storage = LocalBucketStorage(root=str(tmp_path / "bucket"))
    sensor = build_new_data_sensor(load_registry(), "customers", MODELS)
    deliver(storage, "2026-11-01", range(3))
    deliver(storage, "2026-11-02", range(2))
    deliver(storage, "2026-11-03", range(2), marker=False)  # still arriving

    first = tick(sensor, storage)
    partitions = sorted(r.partition_key for r in first.run_requests)
    assert partitions == ["2026-11-01", "2026-11-02"]  # one run per day for both models
    assert all(r.asset_selection == [prediction_key(m) for m in MODELS]
               for r in first.run_requests)

    noop = tick(sensor, storage, first.cursor)
    assert not noop.run_requests and noop.skip_reason

    repeated = tick(sensor, storage, None)  # the first tick again, e.g. after a crash
    assert keys_of(repeated) == keys_of(first), "run keys must be deterministic"

    storage.write_bytes("data/customers/dt=2026-11-03/_SUCCESS", b"")
    new_day = tick(sensor, storage, noop.cursor)
    assert sorted(r.partition_key for r in new_day.run_requests) == ["2026-11-03"]

    deliver(storage, "2026-11-01", [7], marker=False)  # a late file for a scored day
    late = tick(sensor, storage, new_day.cursor)
    assert sorted(r.partition_key for r in late.run_requests) == ["2026-11-01"]
    assert not keys_of(late) & keys_of(first), "re-delivery needs new run keys"
    assert not tick(sensor, storage, late.cursor).run_requests


def test_new_data_sensor_on_s3_with_thousands_of_keys(moto_endpoint):
    bucket = f"sensor-{uuid.uuid4().hex[:10]}"
    client = boto3.client("s3", endpoint_url=moto_endpoint, region_name=REGION)
    client.create_bucket(Bucket=bucket)
    storage = S3BucketStorage(bucket=bucket, s3=S3Resource(endpoint_url=moto_endpoint,
                                                           region_name=REGION))
    for day in range(1, 13):  # 1,211 keys: more than one page of 1,000
        for index in range(100):
            client.put_object(Bucket=bucket, Body=b"",
                              Key=f"data/customers/dt=2026-10-{day:02d}/part-{index:05d}.parquet")
        if day != 12:
            client.put_object(Bucket=bucket, Key=f"data/customers/dt=2026-10-{day:02d}/_SUCCESS",
                              Body=b"")
    sensor = build_new_data_sensor(load_registry(), "customers", MODELS)
    first = tick(sensor, storage)
    assert len(first.run_requests) == 11
    assert "2026-10-12" not in {r.partition_key for r in first.run_requests}
    assert not tick(sensor, storage, first.cursor).run_requests


def test_retry_sensor_requests_failed_partition_until_the_cap(pipeline):
    instance = dg.DagsterInstance.ephemeral()
    day = SMALL_DATA.days[0]
    key = (day, "churn_xgb")
    pipeline.score(*key, instance=instance)
    out_dir = pipeline.storage.root_path / f"predictions/churn_xgb/dt={day}"
    (out_dir / "part-00004.parquet").unlink()
    failed = run_checks_only(pipeline, *key, instance=instance)
    complete = {e.check_name: e for e in failed.get_asset_check_evaluations()}
    assert not complete["predictions_complete"].passed
    assert "| 1 | pred-customers-20261101-a1 | Completed |" in \
        complete["predictions_complete"].metadata["attempts"].value

    registry = load_registry(pipeline.registry_path)
    sensor = build_retry_sensor(registry)
    context = dg.build_sensor_context(instance=instance,
                                      resources={"job_store": pipeline.job_store})
    result = sensor(context)
    (request,) = result.run_requests
    assert request.partition_key == day
    assert request.asset_selection == [prediction_key("churn_xgb")]

    retried = pipeline.score(*key, instance=instance, tags=request.tags)
    checks = {e.check_name: e for e in retried.get_asset_check_evaluations()}
    assert checks["predictions_complete"].passed
    assert materialization(retried, "churn_xgb")["files_scored_now"] == 1
    again = sensor(dg.build_sensor_context(instance=instance, cursor=result.cursor,
                                           resources={"job_store": pipeline.job_store}))
    assert not again.run_requests

    # the cap: with max_attempts = 2 and two attempts recorded, a new failure is not retried
    (out_dir / "part-00000.parquet").unlink()
    run_checks_only(pipeline, *key, instance=instance)
    edit_registry(pipeline.registry_path, lambda data: setting(data, "max_attempts", 2))
    capped = build_retry_sensor(load_registry(pipeline.registry_path))(
        dg.build_sensor_context(instance=instance, cursor=again.cursor,
                                resources={"job_store": pipeline.job_store}))
    assert not capped.run_requests
    assert "1 at the attempt cap" in capped.skip_reason.skip_message
    assert len(pipeline.attempts(*key)) == 2
