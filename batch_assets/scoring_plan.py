"""What a predictions partition needs: its inputs, which are done, and a final tally.

An input file is done when its manifest exists, was written by the current model
version for an input of the same size, counts as many rows out as in, and its
output file is intact: it exists with the manifest's ``output_bytes`` (manifests
older than that field skip the size rule) and its Parquet footer counts
``rows_out`` rows. Everything else is pending, so a rerun after a failure, a model
change, a re-delivered file or an output damaged in the bucket redoes exactly the
files that need it.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

import pyarrow.parquet as pq

from batch_assets.layout import (
    SUCCESS_MARKER,
    data_prefix,
    job_plan_key,
    prediction_manifest_key,
    prediction_output_key,
    predictions_prefix,
)
from batch_assets.parquet_footer import read_footer
from container.contract import FAILURES_DIR, FileManifest, ModelFailure
from resources.storage import ObjectStorage

# concurrent manifest and footer reads: each is one small request (a round trip on
# S3), so a few hundred files take a few round trips of wall time, not hundreds
READ_THREADS = 16
_SMALLEST_PARQUET = 12  # "PAR1", footer length, "PAR1"


T = TypeVar("T")
R = TypeVar("R")


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
    done: dict[str, FileManifest] = field(default_factory=dict)  # relative -> manifest
    problems: dict[str, str] = field(default_factory=dict)  # relative -> why not done
    # the subset of problems where the manifest is current but its output is missing
    # or damaged (wrong size, unreadable footer, wrong row count): a rerun re-scores it
    damaged: dict[str, str] = field(default_factory=dict)
    footers: dict[str, pq.FileMetaData] = field(default_factory=dict)  # of done files

    @property
    def pending(self) -> list[InputFile]:
        return [i for i in self.inputs if i.relative not in self.done]

    @property
    def complete(self) -> bool:
        return not self.pending

    @property
    def rows_in(self) -> int:
        return sum(m.rows_in for m in self.done.values())

    @property
    def rows_out(self) -> int:
        return sum(m.rows_out for m in self.done.values())


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
    """Which inputs are done, and why each other one is not.

    One listing of the day's prediction prefix gives every manifest's presence and
    every output's size (no request per file); manifests and output footers are
    read by a small thread pool, since on S3 each read is a round trip and a day
    can have hundreds of files.
    """
    tally = PartitionTally(inputs=inputs)
    sizes = {o.key: o.size for o in storage.list_objects(predictions_prefix(model, day))}
    plans: dict[str, dict] = {}
    with ThreadPoolExecutor(max_workers=max(1, min(READ_THREADS, len(inputs)))) as pool:
        manifests = _map_in_chunks(
            pool, lambda item: _read_manifest(storage, sizes, model, day, item), inputs)
        to_read: list[tuple[InputFile, FileManifest, str]] = []  # footers still to check
        for item, manifest in zip(inputs, manifests, strict=True):
            if isinstance(manifest, str):
                tally.problems[item.relative] = manifest
                continue
            why_not = _why_not_done(item, manifest, model_version,
                                    _plan_of(storage, manifest.job_name, plans))
            if why_not:
                tally.problems[item.relative] = why_not
                continue
            output_key = prediction_output_key(model, day, item.relative)
            damage = _size_damage(sizes.get(output_key), manifest)
            if damage:
                tally.problems[item.relative] = tally.damaged[item.relative] = damage
                continue
            to_read.append((item, manifest, output_key))
        footers = _map_in_chunks(
            pool, lambda entry: _read_footer(storage, entry[2], sizes[entry[2]]), to_read)
        for (item, manifest, _key), footer in zip(to_read, footers, strict=True):
            damage = footer if isinstance(footer, str) else _footer_damage(footer, manifest)
            if damage:
                tally.problems[item.relative] = tally.damaged[item.relative] = damage
            else:
                tally.done[item.relative] = manifest
                tally.footers[item.relative] = footer
    return tally


def read_model_failures(storage: ObjectStorage, model: str, day: str,
                        job_name: str) -> list[ModelFailure]:
    """Why ``model`` failed in job ``job_name`` while the job's other models went on
    (``container.infer`` records one ``ModelFailure`` per instance); [] if it did not."""
    found = []
    for item in storage.list_objects(predictions_prefix(model, day) + FAILURES_DIR + "/"):
        try:
            failure = ModelFailure.from_dict(storage.read_json(item.key))
        except (FileNotFoundError, ValueError):
            continue  # replaced or unreadable: another job's record, not this one's
        if failure.job_name == job_name:
            found.append(failure)
    return found


def _map_in_chunks(pool: ThreadPoolExecutor, function: Callable[[T], R],
                   items: list[T]) -> list[R]:
    """``function`` over ``items`` in order, a few chunks per thread rather than a task
    per item: a day of 3,000 files would otherwise pay 6,000 task hand-offs, more
    than the reads themselves cost on a local bucket."""
    size = max(1, -(-len(items) // (READ_THREADS * 4)))
    chunks = [items[i:i + size] for i in range(0, len(items), size)]
    return [result for chunk in pool.map(lambda part: [function(i) for i in part], chunks)
            for result in chunk]


def _read_manifest(storage: ObjectStorage, sizes: dict[str, int], model: str, day: str,
                   item: InputFile) -> FileManifest | str:
    """The input's manifest, or why there is none (a string)."""
    key = prediction_manifest_key(model, day, item.relative)
    if key not in sizes:
        return "no manifest"
    try:
        return FileManifest.from_dict(storage.read_json(key))
    except FileNotFoundError:  # deleted since the listing
        return "no manifest"
    except ValueError:  # not JSON, not UTF-8, or not a manifest's fields
        return "unreadable manifest"


def _read_footer(storage: ObjectStorage, key: str, size: int) -> pq.FileMetaData | str:
    """The output's footer, or what is wrong with the output (a string).

    A file shorter than the smallest Parquet file is refused without a read (a
    ranged read of an empty S3 object is an error, not an empty answer).
    """
    if size < _SMALLEST_PARQUET:
        return f"output damaged: {size} bytes, too short for a Parquet file"
    try:
        return read_footer(storage, key)
    except FileNotFoundError:  # deleted since the listing
        return "output file missing"
    except ValueError as exc:
        return f"output damaged: {exc}"


def _size_damage(size: int | None, manifest: FileManifest) -> str:
    """Why the listed output cannot be the one the manifest describes ('' if it can).

    Manifests written before ``output_bytes`` was recorded skip the size rule; the
    footer's row count still applies to them.
    """
    if size is None:
        return "output file missing"
    expected = manifest.output_bytes
    if expected is not None and size != expected:
        return f"output damaged: {size} bytes, manifest says {expected}"
    return ""


def _footer_damage(footer: pq.FileMetaData, manifest: FileManifest) -> str:
    if footer.num_rows != manifest.rows_out:
        return (f"output damaged: footer says {footer.num_rows} rows, manifest says "
                f"{manifest.rows_out}")
    return ""


def _plan_of(storage: ObjectStorage, job_name: str, plans: dict[str, dict]) -> dict:
    if not job_name:
        return {}
    if job_name not in plans:
        key = job_plan_key(job_name)
        plans[job_name] = storage.read_json(key) if storage.exists(key) else {}
    return plans[job_name]


def _why_not_done(item: InputFile, manifest: FileManifest, version: str, plan: dict) -> str:
    """Why the manifest does not cover today's input with today's model ('' if it does)."""
    if manifest.model_version != version:
        return f"scored by model version {manifest.model_version}, current is {version}"
    scored = plan.get(item.relative)
    if scored is not None and scored != item.signature:
        return "input file re-delivered since it was scored"
    if manifest.input_bytes != item.size:
        return "input file changed since it was scored"
    if manifest.rows_in != manifest.rows_out:
        return f"rows in {manifest.rows_in} != rows out {manifest.rows_out}"
    return ""
