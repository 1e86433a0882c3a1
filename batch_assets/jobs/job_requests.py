"""The processing jobs the pipeline runs (train, import, score), as
``create_processing_job`` requests.

A request is the job's own part (command, inputs, output, cluster) and a
``JobLaunch``: how the backend starts our container (image, entrypoint, code
input) and the request settings it owns (volume, keys, network, role, runtime).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from batch_assets.registry import InferenceSettings, ModelSpec
from container.contract import (
    CONFIG_INPUT,
    DATA_INPUT,
    HOLDOUT_INPUT,
    MODEL_INPUT,
    MODEL_OUTPUT,
    PREDICTIONS_OUTPUT,
    SOURCE_INPUT,
    TRAIN_INPUT,
    input_path,
    output_path,
)
from resources.container_launch import ContainerLaunch
from resources.processing import JobSettings, ProcessingBackend
from resources.processing_request import (
    ClusterSpec,
    InputChannel,
    OutputChannel,
    ProcessingJobSpec,
    build_processing_job_request,
)
from resources.storage import ObjectStorage

_TAG_UNSAFE = re.compile(r"[^\w\s.:/=+\-@]")


@dataclass(frozen=True)
class JobLaunch:
    """How the backend starts a job of one framework: the container and the settings."""

    container: ContainerLaunch
    settings: JobSettings


@dataclass(frozen=True)
class JobResources:
    """The backend and the bucket a job's inputs are written to: what every step that
    builds a request holds."""

    processing: ProcessingBackend
    storage: ObjectStorage

    def launch(self, framework: str) -> JobLaunch:
        return JobLaunch(self.processing.container_launch(framework, self.storage),
                         self.processing.job_settings())


def job_tags(asset: str, partition_key: str, run_id: str) -> dict[str, str]:
    """Tags that lead from a job in the SageMaker console back to Dagster."""
    return {
        "dagster-asset": asset,
        "dagster-partition": _TAG_UNSAFE.sub("/", partition_key)[:256],
        "dagster-run-id": run_id,
    }


def training_request(
    launch: JobLaunch, spec: ModelSpec, job_name: str,
    *, train_uri: str, config_uri: str, model_uri: str, tags: dict[str, str],
) -> dict:
    return _model_request(launch, spec, job_name, "train", [
        InputChannel(TRAIN_INPUT, train_uri, input_path(TRAIN_INPUT)),
        InputChannel(CONFIG_INPUT, config_uri, input_path(CONFIG_INPUT)),
    ], _ModelOutput(model_uri, tags))


def import_request(
    launch: JobLaunch, spec: ModelSpec, job_name: str,
    *, source_uri: str, config_uri: str, holdout_uri: str | None, model_uri: str,
    tags: dict[str, str],
) -> dict:
    """``python -m container import``: the artifact as delivered, the import spec and,
    when the registry gives holdout_data, the holdout rows."""
    inputs = [InputChannel(SOURCE_INPUT, source_uri, input_path(SOURCE_INPUT)),
              InputChannel(CONFIG_INPUT, config_uri, input_path(CONFIG_INPUT))]
    if holdout_uri:
        inputs.append(InputChannel(HOLDOUT_INPUT, holdout_uri, input_path(HOLDOUT_INPUT)))
    return _model_request(launch, spec, job_name, "import", inputs,
                          _ModelOutput(model_uri, tags))


@dataclass(frozen=True)
class _ModelOutput:
    """Where a train or import job writes its one bundle, and the job's tags."""

    model_uri: str
    tags: dict[str, str]


def _model_request(launch: JobLaunch, spec: ModelSpec, job_name: str, command: str,
                   inputs: list[InputChannel], output: _ModelOutput) -> dict:
    """A single-instance job that writes one model bundle (train or import)."""
    return _request(launch, job_name, [command], inputs,
                    OutputChannel(MODEL_OUTPUT, output.model_uri, output_path(MODEL_OUTPUT),
                                  upload_mode="EndOfJob"),
                    ClusterSpec(spec.training_instance_type or spec.instance_type, 1),
                    output.tags)


def _request(launch: JobLaunch, job_name: str, arguments: list[str],
             inputs: list[InputChannel], output: OutputChannel, cluster: ClusterSpec,
             tags: dict[str, str]) -> dict:
    """The request of any of our jobs: its own command, inputs, output and cluster
    (type and count), with the backend's settings (volume, keys, network, role,
    runtime) and the launch's image, entrypoint, code input and environment."""
    settings, container = launch.settings, launch.container
    return build_processing_job_request(ProcessingJobSpec(
        job_name=job_name,
        image_uri=container.image_uri,
        entrypoint=container.entrypoint,
        arguments=arguments,
        inputs=[*inputs, *container.extra_inputs],
        environment=container.environment,
        outputs=[output],
        cluster=ClusterSpec(cluster.instance_type, cluster.instance_count,
                            settings.volume_size_gb, settings.volume_kms_key_id),
        output_kms_key_id=settings.output_kms_key_id,
        network=settings.network,
        role_arn=settings.role_arn,
        max_runtime_seconds=settings.max_runtime_seconds,
        tags=tags,
    ))


def scoring_request(
    launch: JobLaunch, specs: list[ModelSpec], job_name: str, *, manifest_uri: str,
    models_manifest_uri: str, config_uri: str, output_uri: str, instance_count: int,
    tags: dict[str, str],
) -> dict:
    """One job for every model in ``specs`` (one scoring group: one dataset, one
    instance type). Input files are listed in a manifest and sharded by key across
    the instances; the models' bundles (a manifest below ``models/``) and the scoring
    plan (``config_uri``) are copied to every instance; outputs go below
    ``output_uri`` (``predictions/``) per model and upload continuously, so files
    finished before a failure are kept. ``instance_count`` is the step's sizing
    (``batch_assets.planning.sizing``: the largest fixed count of its models, or "auto"); the
    engine's knobs are the first set in registry order."""
    return _request(
        launch, job_name, ["infer", *job_inference(specs).container_arguments()],
        [InputChannel(DATA_INPUT, manifest_uri, input_path(DATA_INPUT),
                      distribution="ShardedByS3Key", data_type="ManifestFile"),
         InputChannel(MODEL_INPUT, models_manifest_uri, input_path(MODEL_INPUT),
                      data_type="ManifestFile"),
         InputChannel(CONFIG_INPUT, config_uri, input_path(CONFIG_INPUT))],
        OutputChannel(PREDICTIONS_OUTPUT, output_uri, output_path(PREDICTIONS_OUTPUT),
                      upload_mode="Continuous"),
        ClusterSpec(specs[0].instance_type, instance_count), tags)


def job_inference(specs: list[ModelSpec]) -> InferenceSettings:
    """The job-wide engine knobs (batch rows, workers, threads): for each, the first
    model in ``specs`` that sets it; the predictor is per model (the scoring plan)."""
    def first(name: str):
        return next((getattr(s.inference, name) for s in specs
                     if getattr(s.inference, name) is not None), None)

    return InferenceSettings(batch_rows=first("batch_rows"), workers=first("workers"),
                             threads_per_worker=first("threads_per_worker"))
