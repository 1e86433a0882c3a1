"""Asset checks on predictions, read back from storage (not from what the job said).

* ``predictions_complete`` (blocking): every input file of the day has a manifest
  from the current model version, rows in == rows out, and an intact output: the
  manifest's size and a footer counting the manifest's rows (``tally_partition``).
* ``predictions_valid`` (blocking): no NaN, every prediction a probability in
  [0, 1], and each output's footer has the declared schema and row count. Its
  ``repairable`` metadata says whether every problem is a damaged or missing
  output (the next materialization re-scores it, and the retry sensor asks for
  one) or some are in the predictions themselves (a rerun would keep them).
* ``predictions_drift`` (warning): the population stability index between the
  day's prediction histogram and the previous day's stays under the registry's
  ``drift_psi_threshold``.
"""

import math
from datetime import date, timedelta

import dagster as dg
import pyarrow as pa

from batch_assets.layout import predictions_prefix
from batch_assets.model_pointer import ModelNotTrainedError, read_current_model
from batch_assets.partitions import prediction_partitions, split_prediction_key
from batch_assets.predictions import ASSET_NAME as PREDICTIONS
from batch_assets.registry import Registry
from batch_assets.scoring_plan import (
    MissingInputError,
    PartitionTally,
    list_inputs,
    tally_partition,
)
from container.contract import (
    HISTOGRAM_BINS,
    MANIFEST_DIR,
    PREDICTION_COLUMN,
    FileManifest,
)
from resources.job_store import JobStore
from resources.storage import ObjectStorage

COMPLETE_CHECK = "predictions_complete"
VALID_CHECK = "predictions_valid"
DRIFT_CHECK = "predictions_drift"
_SHOWN = 20


class _Unavailable(Exception):
    """The partition cannot be checked yet (no trained model, no data)."""


def _tally(registry: Registry, storage: ObjectStorage, partitions_def, partition_key: str):
    day, model = split_prediction_key(partitions_def, partition_key)
    spec = registry.get(model)
    try:
        version = read_current_model(storage, model).version
        inputs = list_inputs(storage, spec.dataset, day, registry.success_marker)
    except (ModelNotTrainedError, MissingInputError) as exc:
        raise _Unavailable(str(exc)) from exc
    return day, model, version, tally_partition(storage, model, day, inputs, version)


def build_prediction_checks(registry: Registry) -> list[dg.AssetChecksDefinition]:
    partitions_def = prediction_partitions(registry)

    @dg.asset_check(asset=PREDICTIONS, name=COMPLETE_CHECK, blocking=True,
                    partitions_def=partitions_def,
                    description="Every input file of the day has a manifest from the "
                    "current model version with rows in == rows out, and an intact output "
                    "(the manifest's size, a footer with the manifest's row count).")
    def predictions_complete(
        context: dg.AssetCheckExecutionContext, storage: ObjectStorage, job_store: JobStore
    ) -> dg.AssetCheckResult:
        try:
            _day, _model, version, tally = _tally(registry, storage, partitions_def,
                                                  context.partition_key)
        except _Unavailable as exc:
            return dg.AssetCheckResult(passed=False, description=str(exc))
        inputs = tally.inputs
        return dg.AssetCheckResult(
            passed=tally.complete,
            description=None if tally.complete else (
                f"{len(tally.pending)} of {len(inputs)} input files lack a valid output"),
            metadata={
                "input_files": len(inputs),
                "complete_files": len(tally.done),
                "missing_files": len(tally.pending),
                "rows_in": tally.rows_in,
                "rows_out": tally.rows_out,
                "model_version": version,
                "problems": dg.MetadataValue.json(
                    {r.relative: tally.problems[r.relative] for r in tally.pending[:_SHOWN]}),
                "attempts": dg.MetadataValue.md(
                    attempt_history(job_store, context.partition_key, registry.max_attempts)),
            },
        )

    @dg.asset_check(asset=PREDICTIONS, name=VALID_CHECK, blocking=True,
                    partitions_def=partitions_def,
                    description="No NaN, probabilities in [0, 1], output schema and row "
                    "count as declared (read from each output's Parquet footer); metadata "
                    "`repairable` says whether a rerun fixes the problems.")
    def predictions_valid(
        context: dg.AssetCheckExecutionContext, storage: ObjectStorage
    ) -> dg.AssetCheckResult:
        try:
            day, model, _version, tally = _tally(registry, storage, partitions_def,
                                                 context.partition_key)
        except _Unavailable as exc:
            return dg.AssetCheckResult(passed=False, description=str(exc))
        spec = registry.get(model)
        invalid = _validity_problems(tally, list(spec.key_columns))
        problems = {**tally.damaged, **invalid}
        stats = [m.predictions for m in tally.done.values() if m.predictions is not None]
        return dg.AssetCheckResult(
            passed=not problems,
            description=_validity_summary(tally.damaged, invalid,
                                          storage.uri(predictions_prefix(model, day))),
            metadata={
                "files_checked": len(tally.done) + len(tally.damaged),
                "damaged_outputs": len(tally.damaged),
                "invalid_predictions": len(invalid),
                "repairable": bool(problems) and not invalid,
                "nan_predictions": sum(s.nan_count for s in stats),
                "outside_0_1": sum(s.outside_unit_interval for s in stats),
                "min_prediction": min((s.min for s in stats if s.min is not None),
                                      default=None),
                "max_prediction": max((s.max for s in stats if s.max is not None),
                                      default=None),
                "problems": dg.MetadataValue.json(dict(list(problems.items())[:_SHOWN])),
            },
        )

    @dg.asset_check(asset=PREDICTIONS, name=DRIFT_CHECK, blocking=False,
                    partitions_def=partitions_def,
                    description="Population stability index of the day's predictions "
                    "against the previous day's (warning only).")
    def predictions_drift(
        context: dg.AssetCheckExecutionContext, storage: ObjectStorage
    ) -> dg.AssetCheckResult:
        day, model = split_prediction_key(partitions_def, context.partition_key)
        current = _histogram(storage, model, day)
        previous_day = (date.fromisoformat(day) - timedelta(days=1)).isoformat()
        previous = _histogram(storage, model, previous_day)
        if not current["count"] or not previous["count"]:
            return dg.AssetCheckResult(
                passed=True, severity=dg.AssetCheckSeverity.WARN,
                description=f"nothing to compare: {day} has {current['count']} and "
                f"{previous_day} has {previous['count']} scored rows",
            )
        psi = population_stability_index(previous["histogram"], current["histogram"])
        threshold = registry.drift_psi_threshold
        return dg.AssetCheckResult(
            passed=psi <= threshold,
            severity=dg.AssetCheckSeverity.WARN,
            description=None if psi <= threshold else
            f"prediction distribution moved: PSI {psi:.3f} > {threshold} vs {previous_day}",
            metadata={
                "psi": round(psi, 4),
                "threshold": threshold,
                "mean_prediction": current["sum"] / current["count"],
                "previous_mean_prediction": previous["sum"] / previous["count"],
                "compared_with": previous_day,
            },
        )

    return [predictions_complete, predictions_valid, predictions_drift]


def attempt_history(job_store: JobStore, partition_key: str, cap: int) -> str:
    """Markdown table of the partition's job attempts, for the UI."""
    records = job_store.attempts(PREDICTIONS, partition_key)
    lines = [f"{len(records)} of at most {cap} automatic attempts", "",
             "| attempt | job | status | reason |", "|---|---|---|---|"]
    for record in records:
        reason = (record.failure_reason or "").replace("|", "/").replace("\n", " ")[:200]
        lines.append(f"| {record.attempt} | {record.job_name} | {record.status} | {reason} |")
    return "\n".join(lines)


def _validity_problems(tally: PartitionTally, key_columns: list[str]) -> dict[str, str]:
    """Problems in the predictions of done files (a rerun keeps these files as they are).

    The footers are the ones the tally read (it already checked each row count), so
    this costs no further reads.
    """
    problems: dict[str, str] = {}
    expected_names = [*key_columns, PREDICTION_COLUMN]
    for relative, manifest in tally.done.items():
        stats = manifest.predictions
        if stats is None:
            problems[relative] = "manifest has no prediction statistics"
            continue
        if stats.nan_count:
            problems[relative] = f"{stats.nan_count} NaN predictions"
            continue
        if stats.outside_unit_interval:
            problems[relative] = f"{stats.outside_unit_interval} predictions outside [0, 1]"
            continue
        schema = tally.footers[relative].schema.to_arrow_schema()
        if schema.names != expected_names:
            problems[relative] = f"columns {schema.names}, expected {expected_names}"
        elif schema.field(PREDICTION_COLUMN).type != pa.float64():
            problems[relative] = f"prediction is {schema.field(PREDICTION_COLUMN).type}"
    return problems


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
            f"{len(invalid)} output file(s) with invalid predictions (NaN, outside [0, 1] "
            "or wrong schema): not repairable by a rerun, which keeps them; fix the model "
            "and retrain (a new version re-scores every file), or delete those files' "
            f"manifests under {location}{MANIFEST_DIR}/ to have them re-scored")
    return "; ".join(parts) or None


def _histogram(storage: ObjectStorage, model: str, day: str) -> dict:
    """Sum of the prediction histograms in a day's manifests (any model version)."""
    totals = {"count": 0, "sum": 0.0, "histogram": [0] * HISTOGRAM_BINS}
    for item in storage.list_objects(predictions_prefix(model, day) + MANIFEST_DIR + "/"):
        stats = FileManifest.from_dict(storage.read_json(item.key)).predictions
        if stats is None:
            continue
        totals["count"] += stats.count - stats.nan_count
        totals["sum"] += stats.sum
        totals["histogram"] = [a + b for a, b in zip(totals["histogram"], stats.histogram,
                                                       strict=True)]
    return totals


def population_stability_index(expected: list[int], actual: list[int]) -> float:
    """PSI = sum((a - e) * ln(a / e)) over bins of proportions (empty bins smoothed)."""
    floor = 1e-4
    expected_total, actual_total = max(sum(expected), 1), max(sum(actual), 1)
    psi = 0.0
    for e, a in zip(expected, actual, strict=True):
        e_share = max(e / expected_total, floor)
        a_share = max(a / actual_total, floor)
        psi += (a_share - e_share) * math.log(a_share / e_share)
    return psi
