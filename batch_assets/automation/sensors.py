"""Sensors: score new data as it lands, and re-request partitions whose check failed.

``new_data_sensor_<dataset>`` lists ``data/<dataset>/`` (paginated), looks at the
objects modified since its cursor, and for every date whose success marker
exists requests one run of the predictions of every model that scores the
dataset (one step and one processing job per scoring group). The run
key carries a signature of the day's files (keys, sizes, times), so a tick
repeated after a crash asks for nothing new, while a late or replaced file
changes the signature and asks again; the asset then scores only what changed.
A day the sensor has not seen before (its first tick, a cursor reset) whose files
every model already scored is not requested: a run would find nothing to do. The
check is cheap: one listing of each model's manifests folder of the day, each
input needing a manifest written after the input's last delivery (the run's own
tally, which reads the manifests, stays the judge of what is done). Each tick also
records every newly delivered or re-delivered day as a materialization of the
external asset ``data/<dataset>`` (``batch_assets.assets.data_assets``), so the UI tells
"no data delivered" from "not scored yet". Requests are runs of the
``score_predictions`` job (``batch_assets.automation.jobs``), not of ``__ASSET_JOB``.

``predictions_retry_sensor`` reads failed ``predictions_complete`` evaluations,
and failed ``predictions_valid`` evaluations whose metadata says ``repairable``
(every problem a damaged or missing output, which the next attempt re-scores),
and re-requests those models' days while the job store counts fewer attempts
(of the day's scoring step, shared by its models) than
the registry's ``max_attempts`` (a failing check after a completed job would
otherwise loop forever); past that it leaves the failure visible in the UI, where
the check's metadata lists the attempt history. A partition whose last job
failed for a reason a rerun cannot fix (bad input, permission denied, quota wait
exhausted: ``batch_assets.jobs.failures``) is not requested either. A person can
still materialize the partition by hand.
"""

import hashlib
import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import dagster as dg

from batch_assets.assets.data_assets import delivery_event
from batch_assets.automation.jobs import AssetJob, score_predictions_job
from batch_assets.checks.prediction_checks import COMPLETE_CHECK, VALID_CHECK
from batch_assets.jobs.failures import classify_job_failure
from batch_assets.planning.day_manifests import read_listed
from batch_assets.planning.layout import (
    data_prefix,
    dataset_prefix,
    prediction_manifest_key,
    prediction_manifests_prefix,
    predictions_prefix,
)
from batch_assets.planning.scoring_groups import group_of, model_of, prediction_key
from batch_assets.registry import Registry
from container.contract import is_pack_manifest_name
from resources.job_status import FAILED, STOPPED
from resources.job_store import JobStore
from resources.storage import ObjectInfo, ObjectStorage

# objects modified this long before the cursor are looked at again: S3 listing is
# not a snapshot, and an object written while we listed may carry an older time
CURSOR_OVERLAP = timedelta(minutes=5)
MAX_REMEMBERED_DAYS = 400


def _day_of(key: str, prefix: str) -> str | None:
    rest = key[len(prefix):]
    folder = rest.split("/", 1)[0]
    if not folder.startswith("dt=") or "/" not in rest:
        return None
    day = folder[3:]
    try:
        datetime.strptime(day, "%Y-%m-%d")
    except ValueError:
        return None
    return day


def day_signature(objects: list[ObjectInfo]) -> str:
    digest = hashlib.sha256()
    for item in sorted(objects, key=lambda o: o.key):
        digest.update(f"{item.key}|{item.size}|{item.last_modified.isoformat()}\n".encode())
    return digest.hexdigest()[:16]


def _result(requests: list[dg.RunRequest], cursor: str, skip_message: str,
            events: list[dg.AssetMaterialization] | None = None) -> dg.SensorResult:
    """The tick's run requests, or why it asks for nothing; the cursor and the asset
    events either way."""
    if requests:
        return dg.SensorResult(run_requests=requests, cursor=cursor, asset_events=events)
    return dg.SensorResult(skip_reason=dg.SkipReason(skip_message), cursor=cursor,
                           asset_events=events)


def scored_already(storage: ObjectStorage, models: list[str], day: str,
                   data_files: list[ObjectInfo], dataset_prefix: str) -> bool:
    """True when every model has a manifest for every input of ``day``, written after
    the input's last delivery (one listing per model; only packs' manifests are read,
    since their names do not say which small files they hold)."""
    relative = {i.key[len(dataset_prefix):]: i.last_modified for i in data_files}
    for model in models:
        objects = storage.list_objects(prediction_manifests_prefix(model, day))
        listed = {o.key: o.last_modified for o in objects}
        written = {}
        packs = read_listed(storage, predictions_prefix(model, day),
                            [o for o in objects if is_pack_manifest_name(o.key)])
        for read in packs:  # an unreadable one: its files count as not scored
            if read.manifest is not None:
                written |= {p.input: read.last_modified for p in read.manifest.covered}
        for name, delivered in relative.items():
            at = listed.get(prediction_manifest_key(model, day, name)) or written.get(name)
            if at is None or at < delivered:
                return False
    return bool(relative)


def build_new_data_sensor(registry: Registry, dataset: str, models: list[str],
                          job: AssetJob | None = None
                          ) -> dg.SensorDefinition:
    """``job``: the ``score_predictions`` job its requests run (the one ``Definitions``
    holds; built from the registry if not given)."""
    prefix = dataset_prefix(dataset)

    keys = [prediction_key(model) for model in models]

    @dg.sensor(
        name=f"new_data_sensor_{dataset.replace('-', '_').replace('.', '_')}",
        job=job or score_predictions_job(registry),
        minimum_interval_seconds=60,
        description=f"Requests predictions of {', '.join(models)} for each newly complete "
        f"day under {prefix} (complete = {registry.success_marker} present).",
    )
    def new_data_sensor(context: dg.SensorEvaluationContext, storage: ObjectStorage):
        state = json.loads(context.cursor) if context.cursor else {"since": None, "days": {}}
        since = datetime.fromisoformat(state["since"]) if state["since"] else None
        objects = storage.list_objects(prefix)
        by_day: dict[str, list[ObjectInfo]] = defaultdict(list)
        for item in objects:
            day = _day_of(item.key, prefix)
            if day:
                by_day[day].append(item)
        touched = {
            day for day, items in by_day.items()
            if since is None or any(i.last_modified > since - CURSOR_OVERLAP for i in items)
        }
        requests: list[dg.RunRequest] = []
        events: list[dg.AssetMaterialization] = []
        already = []  # first seen, but every model scored every file
        for day in sorted(touched):
            items = by_day[day]
            if not any(i.key.endswith("/" + registry.success_marker) for i in items):
                continue  # not delivered yet: the marker's arrival will touch the day again
            data_files = [i for i in items if i.key.endswith(".parquet")]
            signature = day_signature(data_files)
            remembered = state["days"].get(day)
            if remembered == signature:
                continue
            state["days"][day] = signature
            events.append(delivery_event(
                dataset, day, signature, len(data_files), sum(i.size for i in data_files),
                storage.uri(data_prefix(dataset, day))))
            if remembered is None and scored_already(
                    storage, models, day, data_files, data_prefix(dataset, day)):
                already.append(day)
                continue
            # one run per day for all the dataset's models: one step, one job per
            # scoring group
            requests.append(dg.RunRequest(
                run_key=f"{dataset}/{day}/{signature}",
                partition_key=day,
                asset_selection=keys,
                tags={"batch/dataset": dataset, "batch/data_signature": signature},
            ))
        if objects:
            newest = max(i.last_modified for i in objects)
            state["since"] = max(newest, since or newest).astimezone(UTC).isoformat()
        for day in sorted(state["days"])[:-MAX_REMEMBERED_DAYS]:
            del state["days"][day]
        if already:
            context.log.info(f"{len(already)} delivered day(s) already scored by "
                             f"{', '.join(models)}, not requested: {already[0]} ... "
                             f"{already[-1]}")
        return _result(requests, json.dumps(state, sort_keys=True),
                       f"no newly complete day under {prefix} to score ({len(objects)} "
                       f"objects listed, {len(already)} delivered day(s) already scored)",
                       events)

    return new_data_sensor


def build_retry_sensor(registry: Registry,
                       job: AssetJob | None = None
                       ) -> dg.SensorDefinition:
    """Its requests are runs of ``job`` (``score_predictions``) selecting one model."""
    keys = [prediction_key(model) for model in registry.model_names]

    @dg.sensor(
        name="predictions_retry_sensor",
        job=job or score_predictions_job(registry),
        minimum_interval_seconds=60,
        description="Re-requests predictions partitions whose completeness check failed, "
        "or whose validity check failed on damaged outputs only (repairable), "
        f"up to {registry.max_attempts} attempts per partition (counted in the job store).",
    )
    def predictions_retry_sensor(context: dg.SensorEvaluationContext, job_store: JobStore):
        from dagster._core.storage.asset_check_execution_record import (
            AssetCheckExecutionRecordStatus,
        )

        def repairable(record) -> bool:
            # a damaged output is re-scored by the next attempt; invalid predictions
            # (NaN, outside [0, 1]) would come back unchanged, so they are not retried
            metadata = record.evaluation.metadata if record.evaluation else {}
            flag = metadata.get("repairable")
            return bool(flag.value) if flag is not None else False

        last_seen = int(context.cursor or 0)
        event_log = context.instance.event_log_storage
        seen_ids: list[int] = []
        # (model, day) -> (run key prefix, record)
        failed: dict[tuple[str, str], tuple[str, object]] = {}
        checks = [(prefix, dg.AssetCheckKey(key, name), retry_if)
                  for key in keys
                  for prefix, name, retry_if in (
                      ("retry", COMPLETE_CHECK, lambda record: True),
                      ("retry-valid", VALID_CHECK, repairable))]
        for prefix, check_key, retry_if in checks:
            model = model_of(check_key.asset_key)
            history = event_log.get_asset_check_execution_history(check_key, limit=1000)
            seen_ids.extend(r.id for r in history)
            newest: dict[str, object] = {}
            for record in history:  # newest first
                if record.partition and record.partition not in newest:
                    newest[record.partition] = record
            for day, record in newest.items():
                if (record.id > last_seen and (model, day) not in failed
                        and record.status == AssetCheckExecutionRecordStatus.FAILED
                        and retry_if(record)):
                    failed[(model, day)] = (prefix, record)
        requests, capped = [], []
        for (model, day), (prefix, record) in failed.items():
            partition = f"{model}/{day}"
            attempts = job_store.attempts(group_of(registry, model).name, day)
            if len(attempts) >= registry.max_attempts:
                capped.append(partition)
                continue
            last = attempts[-1] if attempts else None
            if last is not None and last.status in (FAILED, STOPPED):
                failure = classify_job_failure(last.failure_reason or "")
                if not failure.retryable:
                    context.log.info(f"predictions[{partition}]: its last job "
                                     f"{last.job_name} failed: {failure.describe()}")
                    continue
            requests.append(dg.RunRequest(
                run_key=f"{prefix}/{partition}/{record.id}",
                partition_key=day,
                asset_selection=[prediction_key(model)],
                tags={"batch/retry_of_check_execution": str(record.id)},
            ))
        for partition in capped:
            context.log.warning(
                f"predictions[{partition}] failed its completeness or validity check after "
                f"{registry.max_attempts} attempts: not retried automatically")
        return _result(requests, str(max([last_seen, *seen_ids])),
                       f"no failed completeness checks or repairable validity checks to retry "
                       f"({len(capped)} at the attempt cap)")

    return predictions_retry_sensor
