"""The figures of the job that last scored a model's day, for a run that had nothing to do.

A run of a day whose files are all scored by the current model version (the new
data sensor's re-request, a backfill over complete days, a sibling marked stale by
another model's retraining) runs no job. It still records a materialization, with
``nothing_to_do: true``, because skipping it would leave the partition stale in the
UI after a sibling's retraining (Dagster's staleness is per materialization), and
it is the honest record that the run checked the day. But the UI plots
``seconds`` and ``rows_per_second`` over materializations and shows the latest on
the partition page, so a no-op with zeros would hide the real job. The no-op
therefore carries the figures of the job that did the work forward, read from
storage (not from Dagster's event log, which may be another instance's or wiped):

* the job: the one whose manifests finished last among the day's done files;
* its wall time and instances: ``jobs/<job>/cost.json`` (written when the job ended);
* the model's rows and predictor seconds in it: the manifests of that job;
* its Dagster run: the job store's record of the job.

``figures_from_job`` and ``figures_from_run`` name them. A day whose job left no
cost record (scored before costs were recorded) gets no ``seconds`` and
``rows_per_second`` at all: no point on the plot rather than a zero.
"""

from __future__ import annotations

import dagster as dg

from batch_assets.planning.layout import job_cost_key
from container.contract import FileManifest
from resources.job_cost import JobCost
from resources.job_store import AttemptStore
from resources.storage import ObjectStorage


def last_job_figures(storage: ObjectStorage, job_store: AttemptStore, step: str, day: str,
                     manifests: list[FileManifest]) -> dict:
    """Metadata of the job that last scored these outputs (``{}`` if none is named)."""
    scored = [m for m in manifests if m.job_name]
    if not scored:
        return {}
    job_name = max(scored, key=lambda m: m.finished_at).job_name
    mine = [m for m in scored if m.job_name == job_name]
    rows = sum(m.rows_out for m in mine)
    figures: dict = {
        "figures_from_job": job_name,
        "predict_seconds": sum(m.predict_seconds or 0.0 for m in mine),
    }
    key = job_cost_key(job_name)
    if storage.exists(key):
        cost = JobCost.from_dict(storage.read_json(key))
        seconds = cost.seconds
        figures |= {"seconds": seconds, "instances": cost.instance_count,
                    "instance_type": cost.instance_type}
        if seconds > 0:
            figures["rows_per_second"] = rows / seconds
    record = next((r for r in job_store.attempts(step, day) if r.job_name == job_name), None)
    if record is not None and record.run_id:
        figures["figures_from_run"] = dg.MetadataValue.dagster_run(record.run_id)
    return figures
