"""What a predictions partition needs: its inputs, which are done, and a final tally.

An input file is done when the manifest of an output holding its rows (its own, or
a pack's of small files: ``container.pack_output``) exists, was written by the
current model version for inputs of the same size, counts as many rows out as in,
and its output file is intact: it exists with the manifest's ``output_bytes``
(manifests older than that field skip the size rule) and its Parquet footer counts
``rows_out`` rows. Everything else is pending, so a rerun after a failure, a model
change, a re-delivered file or an output damaged in the bucket redoes exactly the
files that need it (and the other files of a pack that holds one of them).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow.parquet as pq

from batch_assets.planning.day_manifests import map_in_parallel, read_listed
from batch_assets.planning.layout import (
    SUCCESS_MARKER,
    data_prefix,
    job_plan_key,
    predictions_prefix,
)
from batch_assets.planning.parquet_footer import read_footer
from container.contract import (
    FAILURES_DIR,
    MANIFEST_DIR,
    FileManifest,
    ModelFailure,
)
from resources.storage import ObjectStorage

_SMALLEST_PARQUET = 12  # "PAR1", footer length, "PAR1"




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


@dataclass(frozen=True)
class ScoredOutput:
    """A done output: its manifest (one input's, or a pack's) and its footer."""

    manifest_key: str
    output_key: str
    manifest: FileManifest
    footer: pq.FileMetaData


@dataclass
class PartitionTally:
    inputs: list[InputFile]
    # relative -> the manifest of the output holding its rows (a pack's is shared)
    done: dict[str, FileManifest] = field(default_factory=dict)
    outputs: list[ScoredOutput] = field(default_factory=list)  # done outputs, each once
    problems: dict[str, str] = field(default_factory=dict)  # relative -> why not done
    # the subset of problems where the manifest is current but its output is missing
    # or damaged (wrong size, unreadable footer, wrong row count): a rerun re-scores it
    damaged: dict[str, str] = field(default_factory=dict)
    # keys to remove before the pending inputs are scored again: the manifests and
    # outputs holding rows of a pending input, and outputs no manifest claims (an
    # instance killed between output and manifest). A rerun may pack the files
    # differently, so these would not be overwritten and rows would be twice.
    stale: list[str] = field(default_factory=list)

    @property
    def pending(self) -> list[InputFile]:
        return [i for i in self.inputs if i.relative not in self.done]

    @property
    def complete(self) -> bool:
        return not self.pending

    @property
    def manifests(self) -> list[FileManifest]:
        """The done outputs' manifests, each once (sum figures over these, not
        ``done``, whose packed inputs share one manifest)."""
        return [o.manifest for o in self.outputs]

    @property
    def rows_in(self) -> int:
        return sum(m.rows_in for m in self.manifests)

    @property
    def rows_out(self) -> int:
        return sum(m.rows_out for m in self.manifests)

    def manifests_covering(self, relatives: set[str]) -> list[FileManifest]:
        """The done manifests holding rows of any of ``relatives``, each once."""
        return [o.manifest for o in self.outputs
                if any(p.input in relatives for p in o.manifest.covered)]


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

    One listing of the day's prediction prefix gives every manifest and every
    output's size (no request per file); the manifests (``batch_assets.planning.day_manifests``,
    whose error policy marks an unreadable one) and the outputs' footers are read in
    parallel, since on S3 each read is a round trip and a day can have thousands of
    files. An output may hold several inputs (a pack of small
    files, ``FileManifest.packed``): it is done, for all of them, or not at all.
    """
    tally = PartitionTally(inputs=inputs)
    prefix = predictions_prefix(model, day)
    listed = storage.list_objects(prefix)
    sizes = {o.key: o.size for o in listed}
    by_relative = {i.relative: i for i in inputs}
    plans: dict[str, dict] = {}
    claims: dict[str, list[str]] = {}  # relative -> manifest keys claiming its rows
    current: dict[str, FileManifest] = {}
    why_not: dict[str, str] = {}  # relative -> why its manifest is not current
    claimed_outputs: set[str] = set()
    for read in read_listed(storage, prefix, listed):  # batch_assets.planning.day_manifests
        key, manifest = read.key, read.manifest
        if manifest is None:  # unreadable: its input, if one is named so
            owner = _input_of_manifest_key(key, prefix, by_relative)
            if owner is not None:
                why_not[owner] = read.problem
                tally.stale.append(key)
            continue
        claimed_outputs.add(prefix + manifest.output)
        mine = [p.input for p in manifest.covered if p.input in by_relative]
        if not mine:
            continue  # no input delivered today: left alone, as before packing
        reason = _why_not_current(manifest, by_relative, model_version,
                                  _plan_of(storage, manifest.job_name, plans))
        if reason:
            for relative in mine:
                why_not[relative] = reason
            tally.stale += [key, prefix + manifest.output]
            continue
        current[key] = manifest
        for relative in mine:
            claims.setdefault(relative, []).append(key)
    for relative, keys in claims.items():  # rows in two outputs: neither counts
        if len(keys) < 2:
            continue
        reason = (f"rows of {relative} in two outputs ("
                  + ", ".join(k.removeprefix(prefix) for k in keys) + ")")
        for key in keys:
            manifest = current.pop(key, None)
            if manifest is not None:
                tally.stale += [key, prefix + manifest.output]
                for packed in manifest.covered:
                    why_not.setdefault(packed.input, reason)
    to_read: list[tuple[str, FileManifest, str]] = []  # footers still to check
    for key, manifest in current.items():
        output_key = prefix + manifest.output
        damage = _size_damage(sizes.get(output_key), manifest)
        if damage:
            _damaged(tally, manifest, by_relative, damage, key, output_key)
            continue
        to_read.append((key, manifest, output_key))
    footers = map_in_parallel(
        lambda entry: _read_footer(storage, entry[2], sizes[entry[2]]), to_read)
    for (key, manifest, output_key), footer in zip(to_read, footers, strict=True):
        damage = footer if isinstance(footer, str) else _footer_damage(footer, manifest)
        if damage:
            _damaged(tally, manifest, by_relative, damage, key, output_key)
            continue
        tally.outputs.append(ScoredOutput(key, output_key, manifest, footer))
        for packed in manifest.covered:
            if packed.input in by_relative:
                tally.done[packed.input] = manifest
    for item in inputs:
        if item.relative not in tally.done:
            tally.problems.setdefault(item.relative,
                                      why_not.get(item.relative, "no manifest"))
    tally.stale += [k for k in sizes if k.endswith(".parquet") and k not in claimed_outputs
                    and not k.startswith(prefix + "_")]
    tally.stale = [k for k in dict.fromkeys(tally.stale) if k in sizes]
    return tally


def remove_stale(storage: ObjectStorage, tally: PartitionTally) -> int:
    """Delete what the tally found stale (``PartitionTally.stale``), before the
    pending inputs are scored again; returns how many objects were deleted."""
    keys = tally.stale
    map_in_parallel(storage.delete, keys)
    tally.stale = []
    return len(keys)


def _damaged(tally: PartitionTally, manifest: FileManifest, by_relative: dict,
             damage: str, key: str, output_key: str) -> None:
    for packed in manifest.covered:
        if packed.input in by_relative:
            tally.problems[packed.input] = tally.damaged[packed.input] = damage
    tally.stale += [key, output_key]


def _input_of_manifest_key(key: str, prefix: str, by_relative: dict) -> str | None:
    """The input whose own manifest would be at ``key`` (inputs are ``*.parquet``)."""
    stem = key.removeprefix(prefix + MANIFEST_DIR + "/").removesuffix(".json")
    relative = stem + ".parquet"
    return relative if relative in by_relative else None


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


def _why_not_current(manifest: FileManifest, by_relative: dict[str, InputFile],
                     version: str, plan: dict) -> str:
    """Why the manifest does not cover today's inputs with today's model ('' if it
    does): a pack is current only if every one of its inputs delivered today is."""
    if manifest.model_version != version:
        return f"scored by model version {manifest.model_version}, current is {version}"
    if manifest.rows_in != manifest.rows_out:
        return f"rows in {manifest.rows_in} != rows out {manifest.rows_out}"
    for packed in manifest.covered:
        item = by_relative.get(packed.input)
        if item is None:
            continue
        scored = plan.get(item.relative)
        why = ""
        if scored is not None and scored != item.signature:
            why = "input file re-delivered since it was scored"
        elif packed.input_bytes != item.size:
            why = "input file changed since it was scored"
        if why and manifest.packed is not None:
            return f"packed with {item.relative}: {why}"
        if why:
            return why
    return ""
