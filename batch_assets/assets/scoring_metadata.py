"""A model's figures for one scoring step: what its partition page and plots show.

Plain values here; ``checks.metadata_format.format_metadata`` types and rounds them.
A run with nothing to do for the model carries the figures of the job that did the
work forward (``assets.last_job``), so the partition page and the seconds and
rows/s plots show real jobs, not zeros.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from batch_assets.assets.last_job import last_job_figures
from batch_assets.assets.prediction_distribution import distribution_markdown
from batch_assets.assets.step_resources import StepResources
from batch_assets.jobs.job_runner import JobOutcome
from batch_assets.planning.layout import predictions_prefix
from batch_assets.planning.model_pointer import CurrentModel
from batch_assets.planning.tally import PartitionTally
from container.contract import FileManifest, add_predictor_rows, describe_predictor_rows


@dataclass
class ModelDay:
    """One selected model's state in the step: its current version (or why it cannot
    be scored) and its tally before and after the job."""

    model: str
    current: CurrentModel | None = None
    problem: str = ""  # why it cannot be scored (not trained, registry drift)
    before: PartitionTally | None = None
    after: PartitionTally | None = None


def day_predictor_rows(manifests: list[FileManifest]) -> dict[str, int]:
    """Rows per predictor path over the day's outputs (each output once)."""
    rows: dict[str, int] = {}
    for manifest in manifests:
        add_predictor_rows(rows, manifest.predictor_counts)
    return rows


def model_day_metadata(resources: StepResources, step_name: str, day: str, state: ModelDay,
                       outcome: JobOutcome | None, models_in_job: int) -> dict:
    """The model's figures for this run: files and rows now and in all, seconds and
    rows/s of its part of the job, where its outputs are, its distribution, which
    predictor paths scored its rows; the job's name, status and links when it ran one."""
    before, after = state.before, state.after
    files_now = {r for r in after.done if r not in before.done}
    scored_now = after.manifests_covering(files_now)  # each output once (packs)
    rows_now = sum(m.rows_out for m in scored_now)
    seconds = outcome.seconds if outcome and scored_now else 0.0
    predict_seconds = sum(m.predict_seconds or 0.0 for m in scored_now)
    metadata = {
        "model_version": state.current.version,
        "backend": resources.processing.backend_name,
        "scoring_step": step_name,
        "input_files": len(after.inputs),
        "files_scored_now": len(files_now),
        "outputs": len(after.outputs),
        "files_already_done": len(before.done),
        "files_missing": len(after.pending),
        "rows": after.rows_out,
        "rows_scored_now": rows_now,
        "seconds": seconds,
        "rows_per_second": rows_now / seconds if seconds else 0.0,
        "predict_seconds": predict_seconds,
        "output_location": dg.MetadataValue.path(
            resources.storage.uri(predictions_prefix(state.model, day))),
        "nothing_to_do": not scored_now and not before.pending,
        "prediction_distribution": dg.MetadataValue.md(distribution_markdown(
            m.predictions for m in after.manifests)),
        # which predictor paths scored the day's rows (oneDAL, folded linear map, ONNX
        # Runtime, the framework), as each output's manifest counts them
        "predictors": describe_predictor_rows(day_predictor_rows(after.manifests)),
    }
    if metadata["nothing_to_do"]:
        del metadata["seconds"], metadata["rows_per_second"], metadata["predict_seconds"]
        metadata |= last_job_figures(resources.storage, resources.job_store, step_name, day,
                                     after.manifests)
    if outcome is not None and before.pending:
        links = resources.processing.job_links(outcome.record.job_name)
        metadata.update(outcome.metadata(links) | {"seconds": seconds})
        metadata["models_in_job"] = models_in_job
    if after.pending:
        metadata["missing_examples"] = dg.MetadataValue.json(
            {r.relative: after.problems.get(r.relative, "?") for r in after.pending[:20]}
        )
    return metadata
