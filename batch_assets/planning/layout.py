"""Where everything lives in the bucket; the one place that knows key layout.

    data/<dataset>/dt=YYYY-MM-DD/*.parquet (+ _SUCCESS)   inference data
    <training_data>*.parquet                              training data (registry)
    models/<model>/<version>/{model.json, artifact}       model bundles
    models/<model>/current.json                           the version predictions use
    models/<model>/sources/<sha256 head>/...              imported artifacts as delivered
    predictions/<model>/dt=YYYY-MM-DD/<stem>.parquet      output columns per input file
    predictions/<model>/dt=YYYY-MM-DD/_manifests/<stem>.json  written last, per input file
    jobs/<job-name>/plan.json                             the input files it was planned for
    jobs/<job-name>/inputs.manifest, models.manifest      its ManifestFile inputs
    jobs/<job-name>/config/{spec.json, scoring.json}      its config input
    jobs/<job-name>/cost.json                             its cost, once it ended

Every key of the bucket is built here; no other module spells a root or a job file.
(The container's own file names, such as ``_manifests/`` and ``model.json``, are the
contract's; the container code uploaded for prebuilt images lives under ``code/``,
which ``resources.container_launch`` owns.)
"""

from __future__ import annotations

from container.contract import (
    MANIFEST_DIR,
    SCORING_PLAN_FILE,
    SPEC_FILE,
    manifest_relative_path,
    output_relative_path,
)

SUCCESS_MARKER = "_SUCCESS"
DATA_ROOT = "data/"
MODELS_ROOT = "models/"
PREDICTIONS_ROOT = "predictions/"
JOBS_ROOT = "jobs/"


def dataset_prefix(dataset: str) -> str:
    """Every day's data of a dataset (the new-data sensor lists it)."""
    return f"{DATA_ROOT}{dataset}/"


def data_prefix(dataset: str, day: str) -> str:
    return f"{dataset_prefix(dataset)}dt={day}/"


def success_marker_key(dataset: str, day: str) -> str:
    return data_prefix(dataset, day) + SUCCESS_MARKER


def model_prefix(model: str, version: str) -> str:
    return f"{MODELS_ROOT}{model}/{version}/"


def model_relative(key: str) -> str:
    """A key under ``models/`` relative to it: how a scoring job's model input (all of
    ``models/``, by a manifest) names a bundle or one of its files."""
    return key.removeprefix(MODELS_ROOT)


def model_source_prefix(model: str, digest: str) -> str:
    """Where an imported artifact is kept as delivered (apart from the bundles, so
    scoring jobs, which copy a bundle to every instance, do not copy it too)."""
    return f"{MODELS_ROOT}{model}/sources/{digest[:16]}/"


def current_model_key(model: str) -> str:
    return f"{MODELS_ROOT}{model}/current.json"


def predictions_prefix(model: str, day: str) -> str:
    return f"{PREDICTIONS_ROOT}{model}/dt={day}/"


def predictions_relative(model: str, day: str) -> str:
    """A model's day relative to ``predictions/``, the scoring job's output."""
    return predictions_prefix(model, day).removeprefix(PREDICTIONS_ROOT)


def prediction_manifests_prefix(model: str, day: str) -> str:
    """The day's manifests (``batch_assets.planning.day_manifests`` reads them)."""
    return f"{predictions_prefix(model, day)}{MANIFEST_DIR}/"


def prediction_manifest_key(model: str, day: str, relative_input: str) -> str:
    return predictions_prefix(model, day) + manifest_relative_path(relative_input)


def prediction_output_key(model: str, day: str, relative_input: str) -> str:
    return predictions_prefix(model, day) + output_relative_path(relative_input)


def job_prefix(job_name: str) -> str:
    return f"{JOBS_ROOT}{job_name}/"


def job_config_prefix(job_name: str) -> str:
    """The job's config input: the import or training spec, the scoring plan."""
    return job_prefix(job_name) + "config/"


def job_spec_key(job_name: str) -> str:
    return job_config_prefix(job_name) + SPEC_FILE


def job_scoring_plan_key(job_name: str) -> str:
    return job_config_prefix(job_name) + SCORING_PLAN_FILE


def job_inputs_manifest_key(job_name: str) -> str:
    """The ManifestFile listing the scoring job's input files (sharded by key)."""
    return job_prefix(job_name) + "inputs.manifest"


def job_models_manifest_key(job_name: str) -> str:
    """The ManifestFile listing the bundles' files (on every instance)."""
    return job_prefix(job_name) + "models.manifest"


def job_plan_key(job_name: str) -> str:
    return job_prefix(job_name) + "plan.json"


def job_cost_key(job_name: str) -> str:
    """The ended job's ``JobCost``: read back for a day's total across its jobs."""
    return job_prefix(job_name) + "cost.json"
