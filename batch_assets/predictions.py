"""``predictions[date|model]``: a sharded scoring Processing job over one day's files."""

import dagster as dg

from batch_assets.failures import MISSING_PREREQUISITE
from batch_assets.job_requests import job_tags, scoring_request
from batch_assets.job_runner import JobOutcome, PartitionJobRunner
from batch_assets.layout import data_prefix, job_prefix, predictions_prefix
from batch_assets.model_pointer import ModelNotTrainedError, read_current_model
from batch_assets.orchestration import PREDICTIONS_BACKFILL, PROCESSING_POOL, TRANSIENT_RETRY
from batch_assets.partitions import (
    MODEL_DIMENSION,
    prediction_partitions,
    split_prediction_key,
)
from batch_assets.registry import Registry
from batch_assets.scoring_plan import (
    MissingInputError,
    PartitionTally,
    list_inputs,
    tally_partition,
    write_job_plan,
)
from batch_assets.trained_model import ASSET_NAME as TRAINED_MODEL
from batch_assets.trained_model import GROUP
from resources.job_status import COMPLETED
from resources.job_store import JobStore
from resources.local_processing.manifest_file import build_manifest
from resources.processing import SageMakerProcessing
from resources.storage import ObjectStorage

ASSET_NAME = "predictions"


def build_predictions_asset(
    registry: Registry, retry_policy: dg.RetryPolicy = TRANSIENT_RETRY
) -> dg.AssetsDefinition:
    partitions_def = prediction_partitions(registry)

    @dg.asset(
        name=ASSET_NAME,
        partitions_def=partitions_def,
        deps=[dg.AssetDep(
            TRAINED_MODEL,
            partition_mapping=dg.MultiToSingleDimensionPartitionMapping(
                partition_dimension_name=MODEL_DIMENSION
            ),
        )],
        group_name=GROUP,
        kinds={"sagemaker", "parquet"},
        retry_policy=retry_policy,
        pool=PROCESSING_POOL,
        backfill_policy=PREDICTIONS_BACKFILL,
        description="Keys, passthrough and prediction columns (per the model's task) for "
        "every input file of a day, scored by a "
        "SageMaker Processing job with the input sharded by S3 key across the model's "
        "instances. Files already scored by the current model version are skipped.",
    )
    def predictions(
        context: dg.AssetExecutionContext,
        storage: ObjectStorage,
        job_store: JobStore,
        processing: SageMakerProcessing,
    ) -> dg.MaterializeResult:
        day, model = split_prediction_key(partitions_def, context.partition_key)
        spec = registry.get(model)
        try:
            current = read_current_model(storage, model)
            inputs = list_inputs(storage, spec.dataset, day, registry.success_marker)
        except (ModelNotTrainedError, MissingInputError) as exc:
            raise dg.Failure(f"{exc} {MISSING_PREREQUISITE.describe()}",
                             allow_retries=False) from exc
        with PartitionJobRunner(context, ASSET_NAME, context.partition_key, storage,
                                job_store, processing) as runner:
            runner.finish_in_flight()
            before = tally_partition(storage, model, day, inputs, current.version)
            outcome: JobOutcome | None = None
            if before.pending:
                context.log.info(
                    f"{len(before.pending)} of {len(inputs)} files to score with {model} "
                    f"version {current.version}"
                )

                def build(job_name: str) -> dict:
                    write_job_plan(storage, job_name, before.pending)
                    manifest_key = job_prefix(job_name) + "inputs.manifest"
                    storage.write_bytes(manifest_key, build_manifest(
                        storage.uri(data_prefix(spec.dataset, day)),
                        [i.relative for i in before.pending],
                    ))
                    return scoring_request(
                        processing, processing.container_launch(spec.framework, storage),
                        spec, job_name, manifest_uri=storage.uri(manifest_key),
                        model_uri=storage.uri(current.prefix),
                        output_uri=storage.uri(predictions_prefix(model, day)),
                        tags=job_tags(ASSET_NAME, context.partition_key, context.run.run_id),
                    )

                outcome = runner.run_new_attempt(("pred", model, day.replace("-", "")), build)
            else:
                context.log.info(f"all {len(inputs)} files already scored: nothing to run")
        after = tally_partition(storage, model, day, inputs, current.version)
        metadata = _metadata(storage, processing, runner, spec.instance_count, model, day,
                             current.version, before, after, outcome)
        if outcome is not None and outcome.status != COMPLETED:
            links = processing.job_links(outcome.record.job_name, runner.client)
            raise dg.Failure(
                f"{outcome.failure_summary('scoring', links)}. {len(after.done)} of "
                f"{len(inputs)} files are scored and kept; a rerun scores only the rest.",
                metadata=metadata,
                allow_retries=outcome.retryable,
            )
        return dg.MaterializeResult(metadata=metadata,
                                    data_version=dg.DataVersion(current.version))

    return predictions


def _metadata(storage, processing, runner, instances, model, day, version,
              before: PartitionTally, after: PartitionTally, outcome: JobOutcome | None) -> dict:
    scored_now = [m for r, m in after.done.items() if r not in before.done]
    rows_now = sum(m.rows_out for m in scored_now)
    seconds = outcome.seconds if outcome else 0.0
    metadata = {
        "model_version": version,
        "backend": processing.backend_name,
        "instances": instances,
        "input_files": len(after.inputs),
        "files_scored_now": len(scored_now),
        "files_already_done": len(before.done),
        "files_missing": len(after.pending),
        "rows": after.rows_out,
        "rows_scored_now": rows_now,
        "seconds": round(seconds, 2),
        "rows_per_second": round(rows_now / seconds, 1) if seconds else 0.0,
        "output_location": dg.MetadataValue.path(storage.uri(predictions_prefix(model, day))),
        "nothing_to_do": outcome is None,
        # which predictor scored the files (oneDAL, folded linear map, framework),
        # as each file's manifest records it
        "predictors": ", ".join(sorted({m.predictor or "unrecorded"
                                        for m in after.done.values()})) or "none",
    }
    if outcome is not None:
        links = processing.job_links(outcome.record.job_name, runner.client)
        metadata.update(outcome.metadata(links) | {"seconds": round(seconds, 2)})
    if after.pending:
        metadata["missing_examples"] = dg.MetadataValue.json(
            {r.relative: after.problems.get(r.relative, "?") for r in after.pending[:20]}
        )
    return metadata
