"""Asset checks on each model's predictions, read back from storage (not from what the
job said). They are ``check_specs`` of the scoring step, evaluated right after its
job from the tally the step makes anyway (a check-only run tallies by itself).

* ``predictions_complete`` (blocking): every input file of the day has a manifest
  from the current model version, rows in == rows out, and an intact output: the
  manifest's size and a footer counting the manifest's rows (``tally_partition``).
* ``predictions_valid`` (blocking): every row has a prediction; binary predictions
  and multiclass probabilities in [0, 1] (regression values may be anything); each
  output's footer has exactly the contract's columns (keys, passthrough, the task's
  prediction columns) with the prediction columns' types, and the manifest's row
  count. Its ``repairable`` metadata says whether every problem is a damaged or
  missing output (the next materialization re-scores it, and the retry sensor asks
  for one) or some are in the predictions themselves (a rerun would keep them).
  Rows written without a prediction (null) by a model whose ``nan_predictions`` is
  ``mark`` are counted per file and fail the check as a warning, which blocks
  nothing: the model's owner chose to keep such rows, not to stop on them.
* ``predictions_drift`` (warning): the population stability index between the
  day's predictions and the previous day's stays under the registry's
  ``drift_psi_threshold`` (per task: ``batch_assets.checks.prediction_drift``).
"""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta

import dagster as dg

from batch_assets.checks.metadata_format import format_metadata
from batch_assets.checks.prediction_drift import compare_days, day_predictions
from batch_assets.planning.day_manifests import day_manifests, readable
from batch_assets.planning.layout import predictions_prefix
from batch_assets.planning.model_pointer import ModelNotTrainedError, read_current_model
from batch_assets.planning.scoring_groups import group_of, prediction_key
from batch_assets.planning.tally import (
    MissingInputError,
    PartitionTally,
    list_inputs,
    tally_partition,
)
from batch_assets.registry import Registry
from container.contract import MANIFEST_DIR, METADATA_FILE, FileManifest, ModelMetadata
from resources.job_store import AttemptStore
from resources.storage import ObjectStorage

COMPLETE_CHECK = "predictions_complete"
VALID_CHECK = "predictions_valid"
DRIFT_CHECK = "predictions_drift"
_SHOWN = 20

_DESCRIPTIONS = {
    COMPLETE_CHECK: "Every input file of the day has a manifest from the current model "
    "version with rows in == rows out, and an intact output (the manifest's size, a footer "
    "with the manifest's row count).",
    VALID_CHECK: "Every row has a prediction (no NaN); binary predictions and multiclass "
    "probabilities in [0, 1]; each output's columns (keys, passthrough, prediction "
    "columns), prediction types and row count as the contract says (read from its Parquet "
    "footer); metadata `repairable` says whether a rerun fixes the problems. Rows a model "
    "with `nan_predictions = \"mark\"` wrote without a prediction fail it as a warning, "
    "counted per file (`unscored_rows`).",
    DRIFT_CHECK: "Population stability index of the day's predictions against the previous "
    "day's (binary: 10 bins over [0, 1]; regression: the model's holdout-decile bins; "
    "multiclass: the predicted-label distribution). Warning only.",
}
_BLOCKING = {COMPLETE_CHECK: True, VALID_CHECK: True, DRIFT_CHECK: False}


class Unavailable(Exception):
    """The partition cannot be checked yet (no trained model, no data)."""


@dataclass(frozen=True)
class CheckedPartition:
    """One model's day as the checks see it: the current version's metadata (the
    outputs' expected columns) and the tally of its outputs."""

    day: str
    model: str
    metadata: ModelMetadata
    tally: PartitionTally

    @property
    def version(self) -> str:
        return self.metadata.version


def prediction_check_specs(models: tuple[str, ...] | list[str],
                           partitions_def: dg.PartitionsDefinition) -> list[dg.AssetCheckSpec]:
    """The three checks of every model's predictions asset, evaluated in the scoring
    step itself (from the tally it made anyway: no step, no reads of its own); each
    evaluation is recorded for its day (the sensors read them per partition)."""
    return [dg.AssetCheckSpec(name, asset=prediction_key(model), blocking=_BLOCKING[name],
                              description=_DESCRIPTIONS[name], partitions_def=partitions_def)
            for model in models for name in (COMPLETE_CHECK, VALID_CHECK, DRIFT_CHECK)]


def read_partition(registry: Registry, storage: ObjectStorage, model: str,
                   day: str) -> CheckedPartition:
    """Tally a model's day from storage (checks run without a scoring job)."""
    spec = registry.get(model)
    try:
        current = read_current_model(storage, model)
        inputs = list_inputs(storage, spec.dataset, day, registry.success_marker)
    except (ModelNotTrainedError, MissingInputError) as exc:
        raise Unavailable(str(exc)) from exc
    return CheckedPartition(day, model, current_metadata(storage, current.prefix),
                            tally_partition(storage, model, day, inputs, current.version))


def current_metadata(storage: ObjectStorage, model_prefix: str) -> ModelMetadata:
    return ModelMetadata.from_dict(storage.read_json(model_prefix + METADATA_FILE))


def evaluate_checks(registry: Registry, storage: ObjectStorage, job_store: AttemptStore,
                    partition: CheckedPartition | Unavailable, model: str, day: str,
                    selected: set[dg.AssetCheckKey]) -> Iterator[dg.AssetCheckResult]:
    """The selected checks of ``model``'s day; ``Unavailable`` fails the first two."""
    key = prediction_key(model)
    if dg.AssetCheckKey(key, COMPLETE_CHECK) in selected:
        yield (_unavailable(key, COMPLETE_CHECK, partition)
               if isinstance(partition, Unavailable) else
               _complete(registry, job_store, key, partition))
    if dg.AssetCheckKey(key, VALID_CHECK) in selected:
        yield (_unavailable(key, VALID_CHECK, partition)
               if isinstance(partition, Unavailable) else _valid(storage, key, partition))
    if dg.AssetCheckKey(key, DRIFT_CHECK) in selected:
        today = None if isinstance(partition, Unavailable) else partition.tally.manifests
        yield _drift(registry, storage, key, model, day, today)


def _unavailable(key: dg.AssetKey, name: str, why: Unavailable) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(asset_key=key, check_name=name, passed=False,
                               description=str(why))


def _complete(registry: Registry, job_store: AttemptStore, key: dg.AssetKey,
              partition: CheckedPartition) -> dg.AssetCheckResult:
    tally, inputs = partition.tally, partition.tally.inputs
    group = group_of(registry, partition.model)
    return dg.AssetCheckResult(
        asset_key=key, check_name=COMPLETE_CHECK,
        passed=tally.complete,
        description=None if tally.complete else (
            f"{len(tally.pending)} of {len(inputs)} input files lack a valid output"),
        metadata={
            "input_files": len(inputs),
            "complete_files": len(tally.done),
            "missing_files": len(tally.pending),
            "rows_in": tally.rows_in,
            "rows_out": tally.rows_out,
            "model_version": partition.version,
            "problems": dg.MetadataValue.json(
                {r.relative: tally.problems[r.relative] for r in tally.pending[:_SHOWN]}),
            "attempts": dg.MetadataValue.md(
                attempt_history(job_store, group.name, partition.day, registry.max_attempts)),
        },
    )


def _valid(storage: ObjectStorage, key: dg.AssetKey,
           partition: CheckedPartition) -> dg.AssetCheckResult:
    tally = partition.tally
    invalid, marked = _validity_problems(tally, partition.metadata)
    problems = {**tally.damaged, **invalid}
    stats = [m.predictions for m in tally.manifests if m.predictions is not None]
    location = storage.uri(predictions_prefix(partition.model, partition.day))
    summary = [part for part in (_validity_summary(tally.damaged, invalid, location),
                                 _marked_summary(marked, partition.metadata)) if part]
    return dg.AssetCheckResult(
        asset_key=key, check_name=VALID_CHECK,
        passed=not problems and not marked,
        # rows the model's policy keeps unscored (nulls) warn; anything else is an error
        severity=dg.AssetCheckSeverity.WARN if marked and not problems
        else dg.AssetCheckSeverity.ERROR,
        description="; ".join(summary) or None,
        metadata={
            "task": partition.metadata.task,
            "unscored_rows": sum(marked.values()),
            "unscored_rows_by_file": dg.MetadataValue.json(dict(list(marked.items())[:_SHOWN])),
            "files_checked": len(tally.done) + len(tally.damaged),
            "outputs_checked": len(tally.outputs),
            "damaged_outputs": len(tally.damaged),
            "invalid_predictions": len(invalid),
            "repairable": bool(problems) and not invalid,
            "nan_predictions": sum(s.nan_count for s in stats),
            "outside_0_1": sum(s.outside_unit_interval for s in stats),
            "min_prediction": min((s.min for s in stats if s.min is not None), default=None),
            "max_prediction": max((s.max for s in stats if s.max is not None), default=None),
            "problems": dg.MetadataValue.json(dict(list(problems.items())[:_SHOWN])),
        },
    )


def _drift(registry: Registry, storage: ObjectStorage, key: dg.AssetKey, model: str,
           day: str, today: list[FileManifest] | None) -> dg.AssetCheckResult:
    """``today``: the day's done outputs' manifests, as the tally read them (None when
    the day could not be tallied: its readable manifests are read here instead)."""
    task = registry.get(model).task
    previous_day = (date.fromisoformat(day) - timedelta(days=1)).isoformat()
    if today is None:
        today = readable(day_manifests(storage, model, day))
    drift = compare_days(
        task, day_predictions(readable(day_manifests(storage, model, previous_day)), task),
        day_predictions(today, task))
    if drift.psi is None:
        return dg.AssetCheckResult(
            asset_key=key, check_name=DRIFT_CHECK,
            passed=True, severity=dg.AssetCheckSeverity.WARN,
            description=f"nothing to compare between {day} and {previous_day}: "
            f"{drift.why_not_compared}",
            metadata={"task": task, "compared_with": previous_day},
        )
    threshold = registry.drift_psi_threshold
    worst = drift.details.get("worst_class")
    return dg.AssetCheckResult(
        asset_key=key, check_name=DRIFT_CHECK,
        passed=drift.psi <= threshold,
        severity=dg.AssetCheckSeverity.WARN,
        description=None if drift.psi <= threshold else
        f"prediction distribution moved: PSI {drift.psi:.3f} > {threshold} vs "
        f"{previous_day}" + (f" (most moved: class {worst!r})" if worst else ""),
        # typed and rounded as the materializations are (mean_prediction to 0.0001)
        metadata=format_metadata({
            "psi": drift.psi,
            "threshold": threshold,
            "task": task,
            "compared_with": previous_day,
            **{name: dg.MetadataValue.json(value) if isinstance(value, dict | list)
               else value for name, value in drift.details.items()},
        }),
    )


def attempt_history(job_store: AttemptStore, group: str, day: str, cap: int) -> str:
    """Markdown table of the day's scoring job attempts (one job per scoring group and
    day: all its models share them), for the UI."""
    records = job_store.attempts(group, day)
    lines = [f"{len(records)} of at most {cap} automatic attempts", "",
             "| attempt | job | status | reason |", "|---|---|---|---|"]
    for record in records:
        reason = (record.failure_reason or "").replace("|", "/").replace("\n", " ")[:200]
        lines.append(f"| {record.attempt} | {record.job_name} | {record.status} | {reason} |")
    return "\n".join(lines)


def _validity_problems(tally: PartitionTally, metadata: ModelMetadata
                       ) -> tuple[dict[str, str], dict[str, int]]:
    """Problems in the predictions of done outputs, by output name (a rerun keeps
    these outputs as they are), and the rows without a prediction per output of a
    model that marks them (``nan_predictions = "mark"``: counted, not a problem).

    The footers are the ones the tally read (it already checked each row count), so
    this costs no further reads.
    """
    problems: dict[str, str] = {}
    marked: dict[str, int] = {}
    marks = metadata.resolved_nan_predictions == "mark"
    expected_names = metadata.output_column_names()
    expected_types = dict(metadata.prediction_columns())
    for output in tally.outputs:
        relative, manifest = output.manifest.output, output.manifest
        stats = manifest.predictions
        if stats is None:
            problems[relative] = "manifest has no prediction statistics"
            continue
        if stats.nan_count and marks:
            marked[relative] = stats.nan_count
        elif stats.nan_count:
            problems[relative] = f"{stats.nan_count} rows without a prediction (NaN)"
            continue
        if stats.outside_unit_interval and metadata.task != "regression":
            what = "probabilities" if metadata.task == "multiclass" else "predictions"
            problems[relative] = f"{stats.outside_unit_interval} {what} outside [0, 1]"
            continue
        schema = output.footer.schema.to_arrow_schema()
        if schema.names != expected_names:
            problems[relative] = f"columns {schema.names}, expected {expected_names}"
            continue
        wrong = [f"{name} is {schema.field(name).type}, expected {type_name}"
                 for name, type_name in expected_types.items()
                 if str(schema.field(name).type) != type_name]
        if wrong:
            problems[relative] = "; ".join(wrong)
    return problems, marked


def _marked_summary(marked: dict[str, int], metadata: ModelMetadata) -> str | None:
    if not marked:
        return None
    rows = sum(marked.values())
    fix = ("re-import it with [models.inputs] missing_values = \"fill\" or \"refuse\""
           if metadata.imported_from else "retrain it (with [models.inputs] "
           "missing_values = \"fill\" if missing values cause them)")
    return (f"{rows:,} rows in {len(marked)} output file(s) have no prediction (null: the "
            "model returned NaN for them; its nan_predictions = \"mark\" keeps them "
            f"unscored and counted, see unscored_rows_by_file). Fix the data, or {fix}")


def _validity_summary(damaged: dict[str, str], invalid: dict[str, str],
                      location: str) -> str | None:
    """What failed and what to do: a damaged output is re-scored by a rerun, invalid
    predictions are not (their files count as done), so they need a person."""
    parts = []
    if damaged:
        parts.append(
            f"{len(damaged)} output file(s) damaged or missing under {location}: repairable, "
            "the next materialization of this partition re-scores exactly those files (the "
            "retry sensor requests one while attempts remain)")
    if invalid:
        parts.append(
            f"{len(invalid)} output file(s) with invalid predictions (rows without a "
            "prediction, probabilities outside [0, 1] or wrong columns; see problems): not "
            "repairable by a rerun, which keeps them. A new model version re-scores every "
            "file: retrain a trained model after fixing it, re-import an imported one with "
            "a missing-value policy ([models.inputs]) if missing values caused them; or fix "
            f"the data and delete those files' manifests under {location}{MANIFEST_DIR}/ to "
            "have them re-scored")
    return "; ".join(parts) or None
