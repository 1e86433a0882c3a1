"""``ScoringStep``: one day of one scoring group, planned, submitted and reported.

* **plan**: list the day's input files; for each selected model, its current
  version (or why it cannot be scored) and which files it still needs; remove the
  stale outputs a re-score replaces;
* **submit**: size and run ONE processing job for the models with files to score
  (``scoring_job.ScoringJob``), or adopt the one a crashed run left in flight;
* **report**: each model's materialization and checks, or, once the others are
  materialized, the step's failure naming the models that failed and whether a
  retry can help.

The step's values (context, registry, group, day, resources, what the plan found)
live on the object, so no helper passes them along as a list of parameters.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import dagster as dg

from batch_assets.assets.scoring_cost import cost_metadata, day_cost, record_job_cost
from batch_assets.assets.scoring_job import ScoringJob, job_inputs, pending_models
from batch_assets.assets.scoring_metadata import ModelDay, model_day_metadata
from batch_assets.assets.step_resources import StepResources
from batch_assets.checks.metadata_format import format_metadata
from batch_assets.checks.prediction_checks import (
    CheckedPartition,
    Unavailable,
    current_metadata,
    evaluate_checks,
    read_partition,
)
from batch_assets.jobs.failures import BAD_INPUT, CONFIGURATION, MISSING_PREREQUISITE, UNKNOWN
from batch_assets.jobs.job_requests import JobResources
from batch_assets.jobs.job_runner import JobOutcome, PartitionJobRunner
from batch_assets.planning.model_pointer import ModelNotTrainedError, read_current_model
from batch_assets.planning.registry_match import mismatch_message, mismatches
from batch_assets.planning.scoring_groups import ScoringGroup, model_of, prediction_key
from batch_assets.planning.sizing import SizingPlan, plan_instances
from batch_assets.planning.tally import (
    InputFile,
    MissingInputError,
    list_inputs,
    read_model_failures,
    remove_stale,
    tally_partition,
)
from batch_assets.registry import Registry
from container.contract import ModelFailure
from resources.job_cost import JobCost, shares
from resources.job_status import COMPLETED
from resources.storage import ObjectStorage


@dataclass(frozen=True)
class _DayCosts:
    """The job's estimated cost and each model's share of it (empty without a job)."""

    job: JobCost | None
    share: dict[str, float]


class ScoringStep:
    """Scores one day for the selected models of one scoring group."""

    def __init__(self, context: dg.AssetExecutionContext, registry: Registry,
                 group: ScoringGroup, resources: StepResources) -> None:
        self.context = context
        self.registry = registry
        self.group = group
        self.resources = resources
        self.day = context.partition_key
        self.selected = [m for m in group.models
                         if prediction_key(m) in context.selected_asset_keys]
        self.checks = set(context.selected_asset_check_keys)
        self.inputs: list[InputFile] = []
        self.models: dict[str, ModelDay] = {}
        self.pending: list[ModelDay] = []
        self.sizing: SizingPlan | None = None
        self.outcome: JobOutcome | None = None

    @property
    def storage(self) -> ObjectStorage:
        return self.resources.storage

    def run(self) -> Iterator:
        if not self.selected:  # a check-only run: evaluate from storage
            for model in dict.fromkeys(model_of(k.asset_key) for k in self.checks):
                yield from self._checks(model, None)
            return
        yield from self._read_inputs()
        self.models = {model: self._current(model) for model in self.selected}
        with PartitionJobRunner(self.context, self.group.name, self.day, self.storage,
                                self.resources.job_store, self.resources.processing) as runner:
            runner.finish_in_flight()
            self._plan()
            if self.pending:
                self.outcome = self._submit(runner)
            else:
                self.context.log.info(f"all {len(self.inputs)} files already scored by "
                                      f"{', '.join(self.selected)}: nothing to run")
        yield from self._report()

    # --- plan -----------------------------------------------------------------------

    def _read_inputs(self) -> Iterator[dg.AssetObservation]:
        """The day's input files; without them each model's partition page says why."""
        try:
            self.inputs = list_inputs(self.storage, self.group.dataset, self.day,
                                      self.registry.success_marker)
        except MissingInputError as exc:
            for model in self.selected:
                yield dg.AssetObservation(
                    asset_key=prediction_key(model), partition=self.day,
                    metadata={"data_delivered": False,
                              "data_problem": dg.MetadataValue.text(str(exc))})
            raise dg.Failure(f"{exc} {MISSING_PREREQUISITE.describe()}",
                             allow_retries=False) from exc

    def _current(self, model: str) -> ModelDay:
        """The model's current version, or why it cannot be scored: none yet, or one made
        from a registry entry that has changed since (``planning.registry_match``)."""
        try:
            current = read_current_model(self.storage, model)
        except ModelNotTrainedError as exc:
            return ModelDay(model, problem=f"{exc} {MISSING_PREREQUISITE.describe()}")
        spec = self.registry.get(model)
        metadata = current_metadata(self.storage, current.prefix)
        differences = mismatches(spec, metadata)
        if differences:
            return ModelDay(model, problem=f"{mismatch_message(spec, metadata, differences)} "
                                           f"{CONFIGURATION.describe()}")
        return ModelDay(model, current=current)

    @property
    def _ready(self) -> list[ModelDay]:
        return [d for d in self.models.values() if d.current is not None]

    def _plan(self) -> None:
        """Which files each ready model still needs; what a re-score replaces is removed
        first, so no row is in two outputs."""
        for state in self._ready:
            state.before = tally_partition(self.storage, state.model, self.day, self.inputs,
                                           state.current.version)
        self.pending = [d for d in self._ready if d.before.pending]
        for state in self.pending:
            removed = remove_stale(self.storage, state.before)
            if removed:
                self.context.log.info(f"{state.model}: removed {removed} stale output file(s) "
                                      "and manifest(s) of the files to re-score")

    # --- submit ---------------------------------------------------------------------

    def _submit(self, runner: PartitionJobRunner) -> JobOutcome:
        self.context.log.info(
            f"{len(self.inputs)} input files; to score: "
            + ", ".join(f"{d.model} {len(d.before.pending)} files (version "
                        f"{d.current.version})" for d in self.pending))
        models = pending_models(self.registry, self.pending)
        self.sizing = plan_instances(
            self.storage, [m.spec for m in models],
            {m.name: sum(i.size for i in m.tally.pending) for m in models},
            len(job_inputs(models)), self.day,
            self.resources.processing.instance_quotas.get(self.group.instance_type))
        self.context.log.info(f"{self.sizing.instances} x {self.group.instance_type}: "
                              f"{self.sizing.reason}")
        job = ScoringJob(self.group.name, self.group.dataset, self.day, models,
                         self.sizing.instances, self.context.run.run_id)
        resources = JobResources(self.resources.processing, self.storage)
        return runner.run_new_attempt(
            ("pred", self.group.name.removeprefix("score_"), self.day.replace("-", "")),
            lambda job_name: job.request(resources, job_name))

    # --- report ---------------------------------------------------------------------

    def _report(self) -> Iterator:
        for state in self._ready:
            state.after = tally_partition(self.storage, state.model, self.day, self.inputs,
                                          state.current.version)
        costs = self._costs()
        day_total = day_cost(self.storage, self.resources.job_store, self.registry, self.day)
        failures: list[str] = []
        model_failures: list[ModelFailure] = []
        for model in self.selected:
            state = self.models[model]
            problem = self._problem(state, model_failures)
            if problem:
                failures.append(f"{model}: {problem}")
                continue
            metadata = self._metadata(state) | cost_metadata(
                costs.job if model in costs.share else None, costs.share.get(model), day_total)
            yield dg.MaterializeResult(asset_key=prediction_key(model),
                                       metadata=format_metadata(metadata),
                                       data_version=dg.DataVersion(state.current.version))
            yield from self._checks(model, CheckedPartition(
                self.day, model, current_metadata(self.storage, state.current.prefix),
                state.after))
        if failures:
            raise self._failure(failures, model_failures)

    def _costs(self) -> _DayCosts:
        if self.outcome is None:
            return _DayCosts(None, {})
        job = record_job_cost(self.storage, self.resources.processing.instance_prices,
                              self.outcome.description, self.outcome.seconds)
        job_name = self.outcome.record.job_name
        return _DayCosts(job, shares({
            d.model: sum(m.predict_seconds or 0.0 for m in d.after.manifests
                         if m.job_name == job_name)
            for d in self.pending}))

    def _problem(self, state: ModelDay, model_failures: list[ModelFailure]) -> str:
        """Why the model is not materialized ('' when it is): not usable, failed in a
        job that completed for the others, or left files unscored by a failed job."""
        if state.current is None:
            return state.problem
        outcome = self.outcome
        reported = (read_model_failures(self.storage, state.model, self.day,
                                        outcome.record.job_name)
                    if outcome is not None and not state.after.complete else [])
        if reported:
            model_failures += reported
            return reported[0].message
        if outcome is not None and outcome.status != COMPLETED and not state.after.complete:
            return f"{len(state.after.pending)} of {len(self.inputs)} files not scored"
        return ""

    def _metadata(self, state: ModelDay) -> dict:
        """The model's figures; a no-op's name the instances of the job it carries
        figures from, a model of this job also its sizing."""
        instances = (self.sizing.instances if self.sizing
                     else self.registry.get(state.model).instance_count)
        metadata = {"instance_type": self.group.instance_type, "instances": instances}
        metadata |= model_day_metadata(self.resources, self.group.name, self.day, state,
                                       self.outcome, len(self.pending))
        if self.sizing is not None and state.model in {d.model for d in self.pending}:
            metadata["sizing"] = dg.MetadataValue.json(self.sizing.metadata())
        return metadata

    def _checks(self, model: str, partition: CheckedPartition | None
                ) -> Iterator[dg.AssetCheckResult]:
        subject: CheckedPartition | Unavailable
        if partition is not None:
            subject = partition
        else:
            try:
                subject = read_partition(self.registry, self.storage, model, self.day)
            except Unavailable as exc:
                subject = exc
        yield from evaluate_checks(self.registry, self.storage, self.resources.job_store,
                                   subject, model, self.day, self.checks)

    def _failure(self, failures: list[str], model_failures: list[ModelFailure]) -> dg.Failure:
        """The step's failure after the other models were materialized: which models
        failed and why; retried only if the job's failure is retryable, every model had
        a usable current version (trained, and matching its registry entry), and no
        model failed on bad input."""
        untrained = any(d.current is None for d in self.models.values())
        bad_input = any(f.bad_input for f in model_failures)
        message = "not materialized: " + "; ".join(failures)
        retryable = not untrained and not bad_input
        if model_failures:
            message += f" {(BAD_INPUT if bad_input else UNKNOWN).describe()}"
        outcome = self.outcome
        if outcome is not None and outcome.status != COMPLETED:
            links = self.resources.processing.job_links(outcome.record.job_name)
            message = (f"{outcome.failure_summary('scoring', links)}. {message}. The files "
                       "already scored are kept; a rerun scores only the rest.")
            retryable = retryable and outcome.retryable
        return dg.Failure(message, allow_retries=retryable)
