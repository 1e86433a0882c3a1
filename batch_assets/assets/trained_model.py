"""``trained_model[model]``: a training or import Processing job that writes a
versioned bundle; the quality gate decides whether it becomes current."""

import time
from datetime import UTC, datetime

import dagster as dg

from batch_assets.assets.model_import import (
    current_version,
    import_spec,
    run_import_job,
    staged_artifact,
    store_artifact,
)
from batch_assets.assets.partitions import model_partitions
from batch_assets.jobs.job_requests import JobResources, job_tags, training_request
from batch_assets.jobs.job_runner import JobOutcome, PartitionJobRunner
from batch_assets.jobs.orchestration import PROCESSING_POOL, TRANSIENT_RETRY
from batch_assets.planning.layout import job_config_prefix, job_spec_key, model_prefix
from batch_assets.planning.model_pointer import CurrentModel, write_current_model
from batch_assets.registry import ModelSpec, Registry
from container.contract import METADATA_FILE, ModelMetadata, TrainingSpec
from resources.job_status import COMPLETED
from resources.job_store import JobStore
from resources.processing import ProcessingBackend
from resources.storage import ObjectStorage

ASSET_NAME = "trained_model"
GROUP = "batch_inference"
QUALITY_CHECK = "trained_model_quality"


def new_model_version(run_id: str) -> str:
    """Sortable and unique per run: UTC time of training plus the run id's head."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{run_id[:8]}"


def _version_of(request_or_description: dict) -> str:
    uri = request_or_description["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"]
    return uri.rstrip("/").rsplit("/", 1)[-1]


def build_trained_model_asset(
    registry: Registry, retry_policy: dg.RetryPolicy = TRANSIENT_RETRY
) -> dg.AssetsDefinition:
    partitions_def = model_partitions(registry)

    @dg.asset(
        name=ASSET_NAME,
        partitions_def=partitions_def,
        check_specs=[dg.AssetCheckSpec(
            QUALITY_CHECK, asset=ASSET_NAME, blocking=True, partitions_def=partitions_def,
            description="Holdout metric within the registry's quality_threshold (a minimum "
            "for roc_auc, accuracy and r2; a maximum for logloss, rmse and mae). A model "
            "that misses it is kept for inspection but never becomes current, so it never "
            "feeds predictions.",
        )],
        retry_policy=retry_policy,
        pool=PROCESSING_POOL,
        group_name=GROUP,
        kinds={"sagemaker", "xgboost", "scikitlearn"},
        description="A model from the registry, trained by a single-instance SageMaker "
        "Processing job (`python -m container train`), or imported from an existing "
        "artifact (`python -m container import`: checked against the registry, versioned "
        "by its digest); writes `models/{model}/{version}/` and points "
        "`models/{model}/current.json` at it.",
    )
    def trained_model(
        context: dg.AssetExecutionContext,
        storage: ObjectStorage,
        job_store: JobStore,
        processing: ProcessingBackend,
    ) -> dg.MaterializeResult:
        spec = registry.get(context.partition_key)
        with PartitionJobRunner(context, ASSET_NAME, spec.name, storage, job_store,
                                processing) as runner:
            outcome = runner.finish_in_flight()
            if (outcome is None or outcome.status != COMPLETED) and spec.imported:
                with staged_artifact(spec, storage, registry.path) as staged:
                    job_spec = import_spec(spec, staged)
                    if current_version(storage, spec.name) == job_spec.version:
                        return _unchanged(context, spec, storage, job_spec.version)
                    source = store_artifact(spec, storage, staged)
                outcome = run_import_job(context, spec, storage, runner, processing, source,
                                         job_spec, ASSET_NAME)
            elif outcome is None or outcome.status != COMPLETED:
                outcome = _train(context, spec, storage, runner, processing)
            return _publish(context, spec, storage, processing, runner, outcome)

    return trained_model


def _train(context, spec: ModelSpec, storage: ObjectStorage, runner: PartitionJobRunner,
           processing: ProcessingBackend) -> JobOutcome:
    if not storage.list_objects(spec.training_data):
        raise dg.Failure(
            f"no training data for model {spec.name!r} under {storage.uri(spec.training_data)}"
            " (its training_data in the model registry). Deliver the training files or fix "
            "the prefix.",
            allow_retries=False,
        )
    version = new_model_version(context.run.run_id)

    def build(job_name: str) -> dict:
        storage.write_json(job_spec_key(job_name), TrainingSpec(
            name=spec.name, version=version, framework=spec.framework,
            features=list(spec.features), key_columns=list(spec.key_columns),
            label=spec.label, categorical_features=list(spec.categorical_features),
            hyperparameters=dict(spec.hyperparameters), task=spec.task,
            passthrough_columns=list(spec.passthrough_columns),
            missing_values=spec.missing_values, fill_values=dict(spec.fill_values),
            fill_statistic=spec.fill_statistic, nan_predictions=spec.nan_predictions,
        ).to_dict())
        return training_request(
            JobResources(processing, storage).launch(spec.framework), spec, job_name,
            train_uri=storage.uri(spec.training_data),
            config_uri=storage.uri(job_config_prefix(job_name)),
            model_uri=storage.uri(model_prefix(spec.name, version)),
            tags=job_tags(ASSET_NAME, spec.name, context.run.run_id),
        )

    return runner.run_new_attempt(("train", spec.name), build)


def _unchanged(context, spec: ModelSpec, storage: ObjectStorage,
               version: str) -> dg.MaterializeResult:
    """The artifact and its registry entry are what the current version was imported
    from: no job, no new version, the same data version (predictions stay fresh)."""
    bundle = ModelMetadata.from_dict(
        storage.read_json(model_prefix(spec.name, version) + METADATA_FILE))
    note = f"unchanged artifact, version {version}"
    context.log.info(f"model {spec.name}: {note} stays current; no import job")
    return dg.MaterializeResult(
        check_results=[dg.AssetCheckResult(
            check_name=QUALITY_CHECK, passed=True,
            description=f"{note}: checked when it was imported, stays current",
            metadata={"model_version": version})],
        metadata={
            "model_version": version,
            "import": note,
            "model_uri": dg.MetadataValue.path(storage.uri(model_prefix(spec.name, version))),
            "artifact": spec.artifact,
            "artifact_sha256": bundle.source_sha256,
            "is_current": True,
            "holdout_metrics": dg.MetadataValue.json(bundle.metrics),
        },
        data_version=dg.DataVersion(version),
    )


def _job_kind(description: dict) -> str:
    """'import' or 'training', from the job's container arguments."""
    arguments = description.get("AppSpecification", {}).get("ContainerArguments") or []
    return "import" if arguments[:1] == ["import"] else "training"


def _publish(context, spec: ModelSpec, storage: ObjectStorage, processing, runner,
             outcome: JobOutcome) -> dg.MaterializeResult:
    job_name = outcome.record.job_name
    links = processing.job_links(job_name)
    kind = _job_kind(outcome.description)
    if outcome.status != COMPLETED:
        raise dg.Failure(
            f"model {spec.name!r}: {outcome.failure_summary(kind, links)}",
            metadata=outcome.metadata(links),
            allow_retries=outcome.retryable,
        )
    version = _version_of(outcome.description)
    prefix = model_prefix(spec.name, version)
    if not storage.exists(prefix + METADATA_FILE):
        raise dg.Failure(
            f"{kind} job {job_name} completed but wrote no {METADATA_FILE} under "
            f"{storage.uri(prefix)}; the bundle is incomplete and was not published"
        )
    bundle = ModelMetadata.from_dict(storage.read_json(prefix + METADATA_FILE))
    metrics = bundle.metrics
    quality = metrics.get(spec.quality_metric)
    # an import without holdout_data has no metrics: nothing to gate on
    gate_skipped = bool(bundle.imported_from) and not metrics
    good_enough = gate_skipped or spec.quality_passes(quality)
    # rmse, mae and logloss: lower is better, the threshold is a maximum
    limit = "maximum" if spec.quality_threshold_is_maximum else "minimum"
    failed_as = ">" if spec.quality_threshold_is_maximum else "<"
    if gate_skipped:
        context.log.warning(f"model {spec.name} version {version}: imported without "
                            "holdout_data, so the quality gate was not applied")
    if good_enough:
        write_current_model(storage, CurrentModel(
            model=spec.name, version=version, prefix=prefix, framework=spec.framework,
            metrics=metrics, job_name=job_name, trained_at=time.time(),
        ))
        context.log.info(f"model {spec.name} version {version} is current: {metrics}")
    else:
        context.log.warning(
            f"model {spec.name} version {version}: holdout {spec.quality_metric} {quality} "
            f"misses the {limit} {spec.quality_threshold}; the current model stays in use")
    description = None
    if gate_skipped:
        description = ("not applied: the registry gives no holdout_data for this imported "
                       f"model; version {version} is current unmeasured")
    elif not good_enough:
        description = (f"holdout {spec.quality_metric} {quality} {failed_as} threshold "
                       f"{spec.quality_threshold} (a {limit}): version {version} was not "
                       "made current")
    check = dg.AssetCheckResult(
        check_name=QUALITY_CHECK,
        passed=good_enough,
        description=description,
        metadata={spec.quality_metric: quality, "threshold": spec.quality_threshold,
                  "threshold_is": limit, "model_version": version,
                  "gate_applied": not gate_skipped},
    )
    origin = ({"training_rows": bundle.training_rows} if not bundle.imported_from else {
        "artifact": bundle.imported_from,
        "artifact_sha256": bundle.source_sha256,
        "quality_gate": "skipped: no holdout_data" if gate_skipped else "applied",
        "holdout_rows": int(metrics.get("holdout_rows", 0)),
    })
    return dg.MaterializeResult(
        check_results=[check],
        metadata={
            "model_version": version,
            "model_uri": dg.MetadataValue.path(storage.uri(prefix)),
            "framework": spec.framework,
            "task": spec.task,
            "features": len(spec.features),
            "source": kind,
            **origin,
            f"holdout_{spec.quality_metric}": float(quality) if quality is not None else None,
            "quality_threshold": spec.quality_threshold,
            "is_current": good_enough,
            "holdout_metrics": dg.MetadataValue.json(metrics),
            "backend": processing.backend_name,
            **outcome.metadata(links),
        },
        data_version=dg.DataVersion(version),
    )
