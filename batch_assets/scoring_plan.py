"""What a predictions partition needs: its inputs, which are done, and a final tally.

An input file is done when its manifest exists, was written by the current model
version for an input of the same size, counts as many rows out as in, and its
output file exists. Everything else is pending, so a rerun after a failure, a
model change or a re-delivered file redoes exactly the files that need it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from batch_assets.layout import (
    SUCCESS_MARKER,
    data_prefix,
    job_plan_key,
    prediction_manifest_key,
    prediction_output_key,
)
from resources.storage import ObjectStorage


class MissingInputError(Exception):
    """The partition's inference data is absent or not marked complete."""


@dataclass(frozen=True)
class InputFile:
    key: str
    relative: str  # below the date prefix, e.g. "part-00001.parquet"
    size: int
    last_modified: str = ""  # ISO time; with size, identifies one delivery of the file

    @property
    def signature(self) -> dict:
        return {"size": self.size, "last_modified": self.last_modified}


def write_job_plan(storage: ObjectStorage, job_name: str, inputs: list[InputFile]) -> None:
    """Record which delivery of each input a job scores (read back by the tally)."""
    storage.write_json(job_plan_key(job_name), {i.relative: i.signature for i in inputs})


@dataclass
class PartitionTally:
    inputs: list[InputFile]
    done: dict[str, dict] = field(default_factory=dict)  # relative -> manifest
    problems: dict[str, str] = field(default_factory=dict)  # relative -> why not done

    @property
    def pending(self) -> list[InputFile]:
        return [i for i in self.inputs if i.relative not in self.done]

    @property
    def complete(self) -> bool:
        return not self.pending

    @property
    def rows_in(self) -> int:
        return sum(m["rows_in"] for m in self.done.values())

    @property
    def rows_out(self) -> int:
        return sum(m["rows_out"] for m in self.done.values())


def list_inputs(
    storage: ObjectStorage, dataset: str, day: str, marker: str | None = SUCCESS_MARKER
) -> list[InputFile]:
    """``marker=None`` accepts a day without its success marker."""
    """The partition's Parquet inputs; errors say where data was expected and the fix."""
    prefix = data_prefix(dataset, day)
    objects = storage.list_objects(prefix)
    if not objects:
        raise MissingInputError(
            f"no inference data for {dataset} on {day}: nothing under {storage.uri(prefix)}. "
            "Deliver the day's files (plus a _SUCCESS marker) or pick a date that has data."
        )
    if marker and not any(o.key == prefix + marker for o in objects):
        raise MissingInputError(
            f"inference data for {dataset} on {day} is not marked complete: "
            f"{storage.uri(prefix + marker)} is missing. Write the marker once all "
            "files of the day are delivered."
        )
    inputs = [
        InputFile(o.key, o.key[len(prefix) :], o.size, o.last_modified.isoformat())
        for o in objects
        if o.key.endswith(".parquet")
    ]
    if not inputs:
        raise MissingInputError(
            f"no *.parquet files under {storage.uri(prefix)} (found only "
            f"{', '.join(o.key[len(prefix):] for o in objects[:5])})"
        )
    return inputs


def tally_partition(
    storage: ObjectStorage, model: str, day: str, inputs: list[InputFile], model_version: str
) -> PartitionTally:
    tally = PartitionTally(inputs=inputs)
    plans: dict[str, dict] = {}
    for item in inputs:
        manifest_key = prediction_manifest_key(model, day, item.relative)
        if not storage.exists(manifest_key):
            tally.problems[item.relative] = "no manifest"
            continue
        try:
            manifest = storage.read_json(manifest_key)
        except (json.JSONDecodeError, UnicodeDecodeError):
            tally.problems[item.relative] = "unreadable manifest"
            continue
        why_not = _why_not_done(storage, model, day, item, manifest, model_version,
                                _plan_of(storage, manifest.get("job_name"), plans))
        if why_not:
            tally.problems[item.relative] = why_not
        else:
            tally.done[item.relative] = manifest
    return tally


def _plan_of(storage: ObjectStorage, job_name: str | None, plans: dict[str, dict]) -> dict:
    if not job_name:
        return {}
    if job_name not in plans:
        key = job_plan_key(job_name)
        plans[job_name] = storage.read_json(key) if storage.exists(key) else {}
    return plans[job_name]


def _why_not_done(storage, model, day, item: InputFile, manifest: dict, version: str,
                  plan: dict) -> str:
    if manifest.get("model_version") != version:
        return f"scored by model version {manifest.get('model_version')}, current is {version}"
    scored = plan.get(item.relative)
    if scored is not None and scored != item.signature:
        return "input file re-delivered since it was scored"
    if manifest.get("input_bytes") not in (None, item.size):
        return "input file changed since it was scored"
    if manifest.get("rows_in") != manifest.get("rows_out"):
        return f"rows in {manifest.get('rows_in')} != rows out {manifest.get('rows_out')}"
    if not storage.exists(prediction_output_key(model, day, item.relative)):
        return "output file missing"
    return ""
