"""What one scoring job is given: its inputs written to storage, and its request.

The job scores the union of the pending models' files, each once; it reads the
models' bundles (a manifest below ``models/``) and the scoring plan (which model
scores which files, and where its outputs go). Everything is written below
``jobs/<job>/`` before the request that points at it is built.
"""

from __future__ import annotations

from dataclasses import dataclass

from batch_assets.assets.scoring_metadata import ModelDay
from batch_assets.jobs.job_requests import JobResources, job_tags, scoring_request
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
    predictions_relative,
)
from batch_assets.planning.tally import InputFile, PartitionTally, write_job_plan
from batch_assets.registry import ModelSpec, Registry
from container.contract import PlannedModel, ScoringPlan
from container.framework_table import framework as table_row
from resources.local_processing.manifest_file import build_manifest


@dataclass(frozen=True)
class PendingModel:
    """A model with files still to score: its spec, current version and tally."""

    spec: ModelSpec
    version: str
    tally: PartitionTally

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass(frozen=True)
class ScoringJob:
    """One day's job of one scoring group, for its pending models."""

    group_name: str
    dataset: str
    day: str
    models: tuple[PendingModel, ...]
    instances: int
    run_id: str

    def request(self, resources: JobResources, job_name: str) -> dict:
        """Write the job's inputs (plan, manifests, scoring plan) and build its request."""
        storage = resources.storage
        inputs = job_inputs(self.models)
        files = [i.relative for i in inputs]
        write_job_plan(storage, job_name, inputs)
        data_manifest = job_inputs_manifest_key(job_name)
        storage.write_bytes(data_manifest, build_manifest(
            storage.uri(data_prefix(self.dataset, self.day)), files))
        bundle_keys = []
        for model in self.models:
            prefix = model_prefix(model.name, model.version)
            bundle_keys += [model_relative(o.key) for o in storage.list_objects(prefix)]
        models_manifest = job_models_manifest_key(job_name)
        storage.write_bytes(models_manifest, build_manifest(storage.uri(MODELS_ROOT),
                                                            bundle_keys))
        storage.write_json(job_scoring_plan_key(job_name), self._plan(len(files)).to_dict())
        specs = [m.spec for m in self.models]
        return scoring_request(
            resources.launch(image_framework(specs)), specs, job_name,
            manifest_uri=storage.uri(data_manifest),
            models_manifest_uri=storage.uri(models_manifest),
            config_uri=storage.uri(job_config_prefix(job_name)),
            output_uri=storage.uri(PREDICTIONS_ROOT), instance_count=self.instances,
            tags=job_tags(self.group_name, self.day, self.run_id),
        )

    def _plan(self, job_files: int) -> ScoringPlan:
        """Which model scores which files (None: all of the job's) into which output."""
        return ScoringPlan([
            PlannedModel(
                name=model.name,
                bundle=model_relative(model_prefix(model.name, model.version)),
                output=predictions_relative(model.name, self.day),
                files=None if len(model.tally.pending) == job_files
                else [i.relative for i in model.tally.pending],
                predictor=model.spec.inference.predictor,
            )
            for model in self.models
        ])


def job_inputs(models: tuple[PendingModel, ...]) -> list[InputFile]:
    """The job's input files: every file some pending model still needs, each once."""
    return list({i.relative: i for m in models for i in m.tally.pending}.values())


def image_framework(specs: list[ModelSpec]) -> str:
    """The framework that decides the container image: one that needs its own image
    (a deep-learning one, whose library must be in it) if any model has one, else the
    first model's."""
    for spec in specs:
        if table_row(spec.framework).needs_its_image:
            return spec.framework
    return specs[0].framework


def pending_models(registry: Registry, models: list[ModelDay]) -> tuple[PendingModel, ...]:
    """``PendingModel``s of the step's model days that have files to score."""
    return tuple(PendingModel(registry.get(d.model), d.current.version, d.before)
                 for d in models)
