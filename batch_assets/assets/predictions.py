"""``predictions/<model>[date]``: one asset per model, scored per dataset-day in one pass.

Each scoring group (``batch_assets.planning.scoring_groups``: the models of one dataset on
one instance type) is one subsettable multi-asset. A run that selects some of its
models runs one step per day, and that step runs ONE sharded Processing job for
all of them: each input file is downloaded and decoded once and scored by every
model that still needs it (``container.infer``, ``ScoringPlan``). Outputs,
manifests, metadata, data versions and checks stay per model, so each model's
history is its own in the UI, and retraining one model re-scores only that one.
A model that fails (not trained, a bad artifact) costs none of the others'
outputs: they are materialized, and the step then fails naming it.
"""

from collections.abc import Iterator
from dataclasses import dataclass

import dagster as dg

from batch_assets.assets.data_assets import data_key
from batch_assets.assets.last_job import last_job_figures
from batch_assets.assets.partitions import prediction_partitions
from batch_assets.assets.prediction_distribution import distribution_markdown
from batch_assets.assets.scoring_cost import cost_metadata, day_cost, record_job_cost
from batch_assets.assets.trained_model import ASSET_NAME as TRAINED_MODEL
from batch_assets.assets.trained_model import GROUP
from batch_assets.checks.metadata_format import format_metadata, legend_markdown
from batch_assets.checks.prediction_checks import (
    CheckedPartition,
    Unavailable,
    current_metadata,
    evaluate_checks,
    prediction_check_specs,
    read_partition,
)
from batch_assets.jobs.failures import BAD_INPUT, CONFIGURATION, MISSING_PREREQUISITE, UNKNOWN
from batch_assets.jobs.job_requests import job_tags, scoring_request
from batch_assets.jobs.job_runner import JobOutcome, PartitionJobRunner
from batch_assets.jobs.orchestration import (
    PREDICTIONS_BACKFILL,
    PROCESSING_POOL,
    TRANSIENT_RETRY,
)
from batch_assets.planning.layout import (
    MODELS_ROOT,
    PREDICTIONS_ROOT,
    data_prefix,
    job_config_prefix,
    job_inputs_manifest_key,
    job_models_manifest_key,
    job_scoring_plan_key,
    model_prefix,
    model_relative,
    predictions_prefix,
    predictions_relative,
)
from batch_assets.planning.model_pointer import (
    CurrentModel,
    ModelNotTrainedError,
    read_current_model,
)
from batch_assets.planning.registry_match import mismatch_message, mismatches
from batch_assets.planning.scoring_groups import (
    ScoringGroup,
    model_of,
    prediction_key,
    scoring_groups,
)
from batch_assets.planning.sizing import SizingPlan, plan_instances
from batch_assets.planning.tally import (
    InputFile,
    MissingInputError,
    PartitionTally,
    list_inputs,
    read_model_failures,
    remove_stale,
    tally_partition,
    write_job_plan,
)
from batch_assets.registry import Registry
from container.contract import (
    FileManifest,
    ModelFailure,
    PlannedModel,
    ScoringPlan,
    add_predictor_rows,
    describe_predictor_rows,
)
from container.framework_table import framework as table_row
from resources.job_cost import shares
from resources.job_status import COMPLETED
from resources.job_store import AttemptStore, JobStore
from resources.local_processing.manifest_file import build_manifest
from resources.processing import SageMakerProcessing
from resources.storage import ObjectStorage


def build_prediction_assets(
    registry: Registry, retry_policy: dg.RetryPolicy = TRANSIENT_RETRY
) -> list[dg.AssetsDefinition]:
    """One multi-asset per scoring group; together one asset per registered model."""
    partitions_def = prediction_partitions(registry)
    return [_group_asset(registry, group, partitions_def, retry_policy)
            for group in scoring_groups(registry)]


def _group_asset(registry: Registry, group: ScoringGroup,
                 partitions_def: dg.PartitionsDefinition,
                 retry_policy: dg.RetryPolicy) -> dg.AssetsDefinition:
    # Dagster allows one partition mapping per upstream asset in a multi-asset, so each
    # model's predictions depend on the group's trained_model partitions (not only its
    # own). The pipeline itself is exact: a model's files count as done only for its
    # current version, so retraining one model re-scores that model alone.
    trained = dg.AssetDep(
        TRAINED_MODEL, partition_mapping=dg.SpecificPartitionsPartitionMapping(list(group.models)))
    specs = [
        dg.AssetSpec(
            prediction_key(model),
            deps=[trained, dg.AssetDep(data_key(group.dataset))],
            group_name=GROUP,
            metadata={"metadata_legend": dg.MetadataValue.md(legend_markdown())},
            kinds={"sagemaker", "parquet"},
            skippable=True,
            description=f"{model}'s predictions of a day: keys, passthrough and prediction "
            f"columns for every input file under `data/{registry.get(model).dataset}/`, "
            f"written to `{predictions_prefix(model, 'YYYY-MM-DD')}`. Scored by the "
            f"`{group.name}` step: one sharded SageMaker Processing job per day for every "
            "selected model of the dataset. Files already scored by the current model "
            "version are skipped; a run with nothing to do records `nothing_to_do: true` "
            "with the figures of the job that did the work (see `metadata_legend`).",
        )
        for model in group.models
    ]

    @dg.multi_asset(
        name=group.name,
        specs=specs,
        check_specs=prediction_check_specs(group.models, partitions_def),
        can_subset=True,
        partitions_def=partitions_def,
        retry_policy=retry_policy,
        pool=PROCESSING_POOL,
        backfill_policy=PREDICTIONS_BACKFILL,
        description=f"Scores {', '.join(group.models)} on `{group.dataset}` data in one "
        f"pass per day ({group.instance_type}).",
    )
    def score(context: dg.AssetExecutionContext, storage: ObjectStorage,
              job_store: JobStore, processing: SageMakerProcessing):
        yield from _score_day(context, registry, group, storage, job_store, processing)

    return score


@dataclass
class _ModelDay:
    """One selected model's state in the step."""

    model: str
    current: CurrentModel | None = None
    problem: str = ""  # why it cannot be scored (not trained)
    before: PartitionTally | None = None
    after: PartitionTally | None = None


def _score_day(context: dg.AssetExecutionContext, registry: Registry, group: ScoringGroup,
               storage: ObjectStorage, job_store: JobStore,
               processing: SageMakerProcessing) -> Iterator:
    day = context.partition_key
    selected = [m for m in group.models if prediction_key(m) in context.selected_asset_keys]
    checks = set(context.selected_asset_check_keys)
    if not selected:  # a check-only run: evaluate from storage
        for model in dict.fromkeys(model_of(k.asset_key) for k in checks):
            yield from _checks(registry, storage, job_store, model, day, checks, None)
        return
    try:
        inputs = list_inputs(storage, group.dataset, day, registry.success_marker)
    except MissingInputError as exc:
        # visible on each model's partition page: no data delivered, not "not scored"
        for model in selected:
            yield dg.AssetObservation(asset_key=prediction_key(model), partition=day,
                                      metadata={"data_delivered": False,
                                                "data_problem": dg.MetadataValue.text(str(exc))})
        raise dg.Failure(f"{exc} {MISSING_PREREQUISITE.describe()}",
                         allow_retries=False) from exc
    days = {model: _current(storage, registry, model) for model in selected}
    ready = [d for d in days.values() if d.current is not None]
    outcome: JobOutcome | None = None
    sizing: SizingPlan | None = None
    pending: list[_ModelDay] = []
    with PartitionJobRunner(context, group.name, day, storage, job_store,
                            processing) as runner:
        runner.finish_in_flight()
        for state in ready:
            state.before = tally_partition(storage, state.model, day, inputs,
                                           state.current.version)
        pending = [d for d in ready if d.before.pending]
        for state in pending:  # what a re-score replaces, so no row is in two outputs
            removed = remove_stale(storage, state.before)
            if removed:
                context.log.info(f"{state.model}: removed {removed} stale output file(s) and "
                                 "manifest(s) of the files to re-score")
        if pending:
            context.log.info(
                f"{len(inputs)} input files; to score: "
                + ", ".join(f"{d.model} {len(d.before.pending)} files (version "
                            f"{d.current.version})" for d in pending))
            sizing = _size(storage, registry, processing, group, day, pending)
            context.log.info(f"{sizing.instances} x {group.instance_type}: {sizing.reason}")
            outcome = runner.run_new_attempt(
                ("pred", group.name.removeprefix("score_"), day.replace("-", "")),
                lambda job_name: _request(processing, storage, registry, group, context,
                                          job_name, day, pending, sizing.instances))
        else:
            context.log.info(f"all {len(inputs)} files already scored by "
                             f"{', '.join(selected)}: nothing to run")
    failures: list[str] = []
    model_failures: list[ModelFailure] = []
    failed_job = outcome is not None and outcome.status != COMPLETED
    for state in ready:
        state.after = tally_partition(storage, state.model, day, inputs, state.current.version)
    cost, share = None, {}
    if outcome is not None:
        cost = record_job_cost(storage, processing.instance_prices, outcome.description,
                               outcome.seconds)
        share = shares({d.model: _predict_seconds(d, outcome.record.job_name)
                        for d in pending})
    costs = day_cost(storage, job_store, registry, day)
    for model in selected:
        state = days[model]
        if state.current is None:
            failures.append(f"{model}: {state.problem}")
            continue
        instances = sizing.instances if sizing else registry.get(model).instance_count
        # a no-op's metadata names the instances of the job it carries figures from
        metadata = {"instance_type": group.instance_type, "instances": instances} | _metadata(
            storage, job_store, processing, runner, group, day, state, outcome, len(pending))
        if sizing is not None and model in share:
            metadata["sizing"] = dg.MetadataValue.json(sizing.metadata())
        metadata |= cost_metadata(cost if model in share else None, share.get(model), costs)
        reported = (read_model_failures(storage, model, day, outcome.record.job_name)
                    if outcome is not None and not state.after.complete else [])
        if reported:  # the model failed in a job that completed for the others
            model_failures += reported
            failures.append(f"{model}: {reported[0].message}")
            continue
        if failed_job and not state.after.complete:
            failures.append(f"{model}: {len(state.after.pending)} of {len(inputs)} files "
                            "not scored")
            continue
        yield dg.MaterializeResult(asset_key=prediction_key(model),
                                   metadata=format_metadata(metadata),
                                   data_version=dg.DataVersion(state.current.version))
        partition = CheckedPartition(day, model, current_metadata(storage, state.current.prefix),
                                     state.after)
        yield from _checks(registry, storage, job_store, model, day, checks, partition)
    if failures:
        raise _failure(processing, runner, outcome, failures, days, model_failures)


def day_predictor_rows(manifests: list[FileManifest]) -> dict[str, int]:
    """Rows per predictor path over the day's outputs (each output once)."""
    rows: dict[str, int] = {}
    for manifest in manifests:
        add_predictor_rows(rows, manifest.predictor_counts)
    return rows


def _predict_seconds(state: _ModelDay, job_name: str) -> float:
    """What the model's predictor spent in job ``job_name`` (its manifests say)."""
    return sum(m.predict_seconds or 0.0 for m in state.after.manifests
               if m.job_name == job_name)


def _current(storage: ObjectStorage, registry: Registry, model: str) -> _ModelDay:
    """The model's current version, or why it cannot be scored: none yet, or one made
    from a registry entry that has changed since (``batch_assets.planning.registry_match``)."""
    try:
        current = read_current_model(storage, model)
    except ModelNotTrainedError as exc:
        return _ModelDay(model, problem=f"{exc} {MISSING_PREREQUISITE.describe()}")
    spec = registry.get(model)
    metadata = current_metadata(storage, current.prefix)
    differences = mismatches(spec, metadata)
    if differences:
        return _ModelDay(model, problem=f"{mismatch_message(spec, metadata, differences)} "
                                        f"{CONFIGURATION.describe()}")
    return _ModelDay(model, current=current)


def _checks(registry: Registry, storage: ObjectStorage, job_store: AttemptStore, model: str,
            day: str, selected: set[dg.AssetCheckKey],
            partition: CheckedPartition | None) -> Iterator[dg.AssetCheckResult]:
    if partition is None:
        try:
            partition = read_partition(registry, storage, model, day)
        except Unavailable as exc:
            yield from evaluate_checks(registry, storage, job_store, exc, model, day, selected)
            return
    yield from evaluate_checks(registry, storage, job_store, partition, model, day, selected)


def _size(storage: ObjectStorage, registry: Registry, processing: SageMakerProcessing,
          group: ScoringGroup, day: str, pending: list[_ModelDay]) -> SizingPlan:
    """How many instances the day's job gets (``batch_assets.planning.sizing``)."""
    return plan_instances(
        storage, [registry.get(d.model) for d in pending],
        {d.model: sum(i.size for i in d.before.pending) for d in pending},
        len(_job_inputs(pending)), day, processing.instance_quotas.get(group.instance_type))


def _job_inputs(pending: list[_ModelDay]) -> list[InputFile]:
    """The job's input files: every file some pending model still needs, each once."""
    return list({i.relative: i for d in pending for i in d.before.pending}.values())


def _request(processing: SageMakerProcessing, storage: ObjectStorage, registry: Registry,
             group: ScoringGroup, context: dg.AssetExecutionContext, job_name: str, day: str,
             pending: list[_ModelDay], instances: int) -> dict:
    """The job's inputs (the union of the models' pending files, the models' bundles,
    the scoring plan) and its ``create_processing_job`` request."""
    inputs = _job_inputs(pending)
    files = [i.relative for i in inputs]
    write_job_plan(storage, job_name, inputs)
    data_manifest = job_inputs_manifest_key(job_name)
    storage.write_bytes(data_manifest, build_manifest(
        storage.uri(data_prefix(group.dataset, day)), files))
    bundle_keys = []
    for state in pending:
        prefix = model_prefix(state.model, state.current.version)
        bundle_keys += [model_relative(o.key) for o in storage.list_objects(prefix)]
    models_manifest = job_models_manifest_key(job_name)
    storage.write_bytes(models_manifest, build_manifest(storage.uri(MODELS_ROOT),
                                                        bundle_keys))
    plan = ScoringPlan([
        PlannedModel(
            name=state.model,
            bundle=model_relative(model_prefix(state.model, state.current.version)),
            output=predictions_relative(state.model, day),
            files=None if len(state.before.pending) == len(files)
            else [i.relative for i in state.before.pending],
            predictor=registry.get(state.model).inference.predictor,
        )
        for state in pending
    ])
    storage.write_json(job_scoring_plan_key(job_name), plan.to_dict())
    specs = [registry.get(d.model) for d in pending]
    return scoring_request(
        processing, processing.container_launch(_framework_of(specs), storage), specs,
        job_name, manifest_uri=storage.uri(data_manifest),
        models_manifest_uri=storage.uri(models_manifest),
        config_uri=storage.uri(job_config_prefix(job_name)),
        output_uri=storage.uri(PREDICTIONS_ROOT), instance_count=instances,
        tags=job_tags(group.name, day, context.run.run_id),
    )


def _framework_of(specs: list) -> str:
    """The framework that decides the container image: one that needs its own image
    (a deep-learning one, whose library must be in it) if any model has one, else the
    first model's."""
    for spec in specs:
        if table_row(spec.framework).needs_its_image:
            return spec.framework
    return specs[0].framework


def _failure(processing: SageMakerProcessing, runner: PartitionJobRunner,
             outcome: JobOutcome | None, failures: list[str],
             days: dict[str, _ModelDay], model_failures: list[ModelFailure]) -> dg.Failure:
    """The step's failure after the other models were materialized: which models
    failed and why; retried only if the job's failure is retryable, every model had a
    usable current version (trained, and matching its registry entry), and no model
    failed on bad input."""
    untrained = any(d.current is None for d in days.values())
    message = "not materialized: " + "; ".join(failures)
    retryable = not untrained and not any(f.bad_input for f in model_failures)
    if model_failures:
        failure = BAD_INPUT if any(f.bad_input for f in model_failures) else UNKNOWN
        message += f" {failure.describe()}"
    if outcome is not None and outcome.status != COMPLETED:
        links = processing.job_links(outcome.record.job_name, runner.client)
        message = (f"{outcome.failure_summary('scoring', links)}. {message}. The files "
                   "already scored are kept; a rerun scores only the rest.")
        retryable = retryable and outcome.retryable
    return dg.Failure(message, allow_retries=retryable)


def _metadata(storage: ObjectStorage, job_store: AttemptStore, processing: SageMakerProcessing,
              runner: PartitionJobRunner, group: ScoringGroup, day: str, state: _ModelDay,
              outcome: JobOutcome | None, models_in_job: int) -> dict:
    """The model's figures for this run (plain values; ``format_metadata`` types and
    rounds them). A run with nothing to do for the model carries the figures of the
    job that did the work forward (``batch_assets.assets.last_job``), so the partition page
    and the seconds and rows/s plots show real jobs, not zeros."""
    before, after = state.before, state.after
    files_now = {r for r in after.done if r not in before.done}
    scored_now = after.manifests_covering(files_now)  # each output once (packs)
    rows_now = sum(m.rows_out for m in scored_now)
    seconds = outcome.seconds if outcome and scored_now else 0.0
    predict_seconds = sum(m.predict_seconds or 0.0 for m in scored_now)
    metadata = {
        "model_version": state.current.version,
        "backend": processing.backend_name,
        "scoring_step": group.name,
        "input_files": len(after.inputs),
        "files_scored_now": len(files_now),
        "outputs": len(after.outputs),
        "files_already_done": len(before.done),
        "files_missing": len(after.pending),
        "rows": after.rows_out,
        "rows_scored_now": rows_now,
        "seconds": seconds,
        "rows_per_second": rows_now / seconds if seconds else 0.0,
        "predict_seconds": predict_seconds,
        "output_location": dg.MetadataValue.path(
            storage.uri(predictions_prefix(state.model, day))),
        "nothing_to_do": not scored_now and not before.pending,
        "prediction_distribution": dg.MetadataValue.md(distribution_markdown(
            m.predictions for m in after.manifests)),
        # which predictor paths scored the day's rows (oneDAL, folded linear map, ONNX
        # Runtime, the framework), as each output's manifest counts them
        "predictors": describe_predictor_rows(day_predictor_rows(after.manifests)),
    }
    if metadata["nothing_to_do"]:
        del metadata["seconds"], metadata["rows_per_second"], metadata["predict_seconds"]
        metadata |= last_job_figures(storage, job_store, group.name, day, after.manifests)
    if outcome is not None and before.pending:
        links = processing.job_links(outcome.record.job_name, runner.client)
        metadata.update(outcome.metadata(links) | {"seconds": seconds})
        metadata["models_in_job"] = models_in_job
    if after.pending:
        metadata["missing_examples"] = dg.MetadataValue.json(
            {r.relative: after.problems.get(r.relative, "?") for r in after.pending[:20]}
        )
    return metadata
