"""How a predictions materialization's figures look in the UI, and what each means.

Dagster shows a float as Python prints it (``405858.4``, ``0.5263006173522026``)
and has no description field per metadata entry (``dg.MetadataValue`` carries a
value only). So:

* ``format_metadata`` types every plain value: counts as ``MetadataValue.int``,
  rates as whole numbers (rows/s), seconds to 0.1 (job wall time, billed time) or
  0.01 (predictor time), shares and money at fixed precision, flags as booleans;
  values already typed (links, paths, markdown, json) pass through.
* ``METADATA_LEGEND`` says in one line what each key measures; it is the
  predictions assets' *definition* metadata (``metadata_legend``, markdown), which
  the UI shows once on the asset's overview instead of repeating it in every
  materialization, where it would push the figures down.
"""

from __future__ import annotations

from collections.abc import Mapping

import dagster as dg

# key -> what it measures (the legend on each predictions asset's overview)
METADATA_LEGEND: dict[str, str] = {
    "nothing_to_do": "true when every input was already scored by the current model "
    "version: no job ran; the job figures below are those of the job that did the work",
    "figures_from_job": "no-op only: the job whose seconds, rows/s and predictor time "
    "are shown",
    "figures_from_run": "no-op only: the Dagster run that launched that job",
    "model_version": "the model version that scored every file of the partition",
    "input_files": "Parquet files delivered for the day",
    "files_scored_now": "files this run's job scored",
    "files_already_done": "files already scored by the current version before the run",
    "files_missing": "files still without a valid output",
    "outputs": "output files of the day: one per input file, or one per pack of "
    "small files (up to 1,024 rows each, packed up to 65,536 rows)",
    "rows": "prediction rows of the day (all done files)",
    "rows_scored_now": "rows this run's job scored for the model",
    "seconds": "wall time of the job, start to end (s, 0.1)",
    "rows_per_second": "rows the job scored for the model / job seconds (whole rows/s)",
    "predict_seconds": "time the model's predictor spent in the job, summed over "
    "worker threads (s, 0.0001)",
    "models_in_job": "models the job scored in one pass over the files",
    "instance_type": "SageMaker instance type of the job",
    "instances": "instances of the job",
    "job_name": "processing job name",
    "job_status": "the job's final status",
    "attempt": "attempt number of the day's scoring step",
    "billed_instance_seconds": "instances x job seconds (s, 0.1)",
    "cost_share": "the model's share of the job (by predict seconds, 0.001)",
    "job_estimated_cost_usd": "the job's cost at the listed price (USD)",
    "estimated_cost_usd": "the model's share of the job's cost (USD)",
    "day_scoring_jobs": "scoring jobs of the day across all models",
    "day_billed_instance_seconds": "instance-seconds of the day's scoring jobs",
    "day_estimated_cost_usd": "cost of the day's scoring jobs (USD)",
    "prediction_distribution": "the day's predictions from the manifests: count, NaN, "
    "min/mean/max and histogram (binary: 10 bins over [0, 1]; regression: the model's "
    "bins; multiclass: rows per predicted class)",
    "predictors": "which predictor paths scored the day's rows, with how many rows each (as "
    "each manifest counts them)",
    "output_location": "where the partition's outputs are",
    "backend": "where the job ran (local runner or SageMaker)",
    "scoring_step": "the multi-asset step that scores the dataset's models",
    "adopted_in_flight_job": "true when the run took over a job an earlier run started",
    "job_arn": "the processing job's ARN (AWS)",
    "console_url": "the job in the SageMaker console (AWS)",
    "logs_url": "the job's CloudWatch log streams (AWS)",
    "job_dir": "the local job's folder (inputs, logs)",
    "sizing": "how the instance count was chosen (instance_count = \"auto\")",
    "cost_note": "why a cost is missing (no price for the instance type)",
    "missing_examples": "up to 20 files not done, with why",
}

# floats rounded to whole numbers (rates) or to these decimals
_WHOLE = ("rows_per_second",)
_DECIMALS = {"predict_seconds": 4, "cost_share": 3}  # packed small files: ms
_SECONDS_DECIMALS = 1
_USD_DECIMALS = 4


def format_float(key: str, value: float) -> dg.MetadataValue:
    """A float at the precision its key calls for (see the module docstring)."""
    if key in _WHOLE or key.endswith("_per_second"):
        return dg.MetadataValue.int(round(value))
    if key in _DECIMALS:
        return dg.MetadataValue.float(round(value, _DECIMALS[key]))
    if key.endswith("_usd"):
        return dg.MetadataValue.float(round(value, _USD_DECIMALS))
    if key.endswith("seconds"):
        return dg.MetadataValue.float(round(value, _SECONDS_DECIMALS))
    return dg.MetadataValue.float(round(value, 4))


def format_metadata(metadata: Mapping[str, object]) -> dict[str, object]:
    """Every plain value typed and rounded for the UI; typed values unchanged."""
    formatted: dict[str, object] = {}
    for key, value in metadata.items():
        if isinstance(value, bool):
            formatted[key] = dg.MetadataValue.bool(value)
        elif isinstance(value, int):
            formatted[key] = dg.MetadataValue.int(value)
        elif isinstance(value, float):
            formatted[key] = format_float(key, value)
        elif isinstance(value, str):
            formatted[key] = dg.MetadataValue.text(value)
        else:
            formatted[key] = value
    return formatted


def legend_markdown() -> str:
    """The legend as a markdown table (key, what it measures)."""
    rows = "\n".join(f"| `{key}` | {meaning} |" for key, meaning in METADATA_LEGEND.items())
    return "| metadata key | what it measures |\n|---|---|\n" + rows
