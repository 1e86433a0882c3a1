"""Where everything lives in the bucket; the one place that knows key layout.

    data/<dataset>/dt=YYYY-MM-DD/*.parquet (+ _SUCCESS)   inference data
    <training_data>*.parquet                              training data (registry)
    models/<model>/<version>/{model.json, artifact}       model bundles
    models/<model>/current.json                           the version predictions use
    models/<model>/sources/<sha256 head>/...              imported artifacts as delivered
    predictions/<model>/dt=YYYY-MM-DD/<stem>.parquet      output columns per input file
    predictions/<model>/dt=YYYY-MM-DD/_manifests/<stem>.json  written last, per input file
    jobs/<job-name>/...                                   per-job inputs (manifest, spec),
                                                          and cost.json once it ended
"""

from __future__ import annotations

from container.contract import manifest_relative_path, output_relative_path

SUCCESS_MARKER = "_SUCCESS"


def data_prefix(dataset: str, day: str) -> str:
    return f"data/{dataset}/dt={day}/"


def success_marker_key(dataset: str, day: str) -> str:
    return data_prefix(dataset, day) + SUCCESS_MARKER


def model_prefix(model: str, version: str) -> str:
    return f"models/{model}/{version}/"


def model_source_prefix(model: str, digest: str) -> str:
    """Where an imported artifact is kept as delivered (apart from the bundles, so
    scoring jobs, which copy a bundle to every instance, do not copy it too)."""
    return f"models/{model}/sources/{digest[:16]}/"


def current_model_key(model: str) -> str:
    return f"models/{model}/current.json"


def predictions_prefix(model: str, day: str) -> str:
    return f"predictions/{model}/dt={day}/"


def prediction_manifest_key(model: str, day: str, relative_input: str) -> str:
    return predictions_prefix(model, day) + manifest_relative_path(relative_input)


def prediction_output_key(model: str, day: str, relative_input: str) -> str:
    return predictions_prefix(model, day) + output_relative_path(relative_input)


def job_prefix(job_name: str) -> str:
    return f"jobs/{job_name}/"


def job_plan_key(job_name: str) -> str:
    return job_prefix(job_name) + "plan.json"


def job_cost_key(job_name: str) -> str:
    """The ended job's ``JobCost``: read back for a day's total across its jobs."""
    return job_prefix(job_name) + "cost.json"
