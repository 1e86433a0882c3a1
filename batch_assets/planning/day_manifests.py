"""A model's day of manifests (``predictions/<model>/dt=<day>/_manifests/``), read in
one place with one error policy.

The tally (what is done), the new-data sensor (what was scored after its delivery),
the drift check (the previous day's predictions) and sizing (earlier days'
throughput) all read these files. They read them here, alike:

* in parallel, on a small thread pool, a few manifests per task (on S3 each read is
  a round trip, and a day can have thousands of files);
* never raising for one bad file: a manifest deleted since the listing is ``no
  manifest``, one that is not JSON, not a manifest, or names an output other than
  the one the contract puts beside it is ``unreadable manifest``; each comes back
  with its ``problem`` and no ``manifest``, and the caller decides what that means
  (the tally re-scores its file; the others leave it out).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from batch_assets.planning.layout import prediction_manifests_prefix, predictions_prefix
from container.contract import (
    MANIFEST_DIR,
    FileManifest,
    manifest_relative_path,
    output_relative_path,
    pack_manifest_relative_path,
    pack_output_relative_path,
)
from resources.buckets import ObjectInfo
from resources.storage import ObjectStorage

# concurrent manifest and footer reads: each is one small request (a round trip on
# S3), so a few hundred files take a few round trips of wall time, not hundreds
READ_THREADS = 16
NO_MANIFEST = "no manifest"
UNREADABLE = "unreadable manifest"
T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class ReadManifest:
    """One listed manifest: its ``manifest``, or the ``problem`` that kept it out."""

    key: str
    last_modified: datetime
    manifest: FileManifest | None
    problem: str = ""


def map_in_parallel(function: Callable[[T], R], items: list[T]) -> list[R]:
    """``function`` over ``items`` in order on up to ``READ_THREADS`` threads, a few
    chunks per thread rather than a task per item: a day of 3,000 files would
    otherwise pay 6,000 task hand-offs, more than the reads cost on a local bucket."""
    if not items:
        return []
    size = max(1, -(-len(items) // (READ_THREADS * 4)))
    chunks = [items[i:i + size] for i in range(0, len(items), size)]
    with ThreadPoolExecutor(max_workers=min(READ_THREADS, len(chunks))) as pool:
        return [result for chunk in pool.map(lambda part: [function(i) for i in part],
                                             chunks)
                for result in chunk]


def read_manifest(storage: ObjectStorage, prefix: str, key: str) -> FileManifest | str:
    """The manifest at ``key`` below a day's ``prefix``, or why it cannot be used."""
    try:
        manifest = FileManifest.from_dict(storage.read_json(key))
    except FileNotFoundError:  # deleted since the listing
        return NO_MANIFEST
    except ValueError:  # not JSON, not UTF-8, or not a manifest's fields
        return UNREADABLE
    if manifest.packed is None:
        expected = (manifest_relative_path(manifest.input),
                    output_relative_path(manifest.input))
    else:
        count = len(manifest.packed)
        expected = (pack_manifest_relative_path(manifest.input, count),
                    pack_output_relative_path(manifest.input, count))
    if (key.removeprefix(prefix), manifest.output) != expected:
        return UNREADABLE  # it names an object the contract would not put there
    return manifest


def is_manifest_key(key: str, prefix: str) -> bool:
    return key.startswith(f"{prefix}{MANIFEST_DIR}/") and key.endswith(".json")


def read_listed(storage: ObjectStorage, prefix: str,
                objects: Iterable[ObjectInfo]) -> list[ReadManifest]:
    """The manifests among ``objects`` (a listing of the day's ``prefix``), read."""
    listed = [o for o in objects if is_manifest_key(o.key, prefix)]

    def read(item: ObjectInfo) -> ReadManifest:
        found = read_manifest(storage, prefix, item.key)
        if isinstance(found, str):
            return ReadManifest(item.key, item.last_modified, None, found)
        return ReadManifest(item.key, item.last_modified, found)

    return map_in_parallel(read, listed)


def day_manifests(storage: ObjectStorage, model: str, day: str,
                  only: Callable[[str], bool] | None = None) -> list[ReadManifest]:
    """Every manifest of ``model``'s ``day`` (those whose key ``only`` accepts), read."""
    listed = storage.list_objects(prediction_manifests_prefix(model, day))
    if only is not None:
        listed = [o for o in listed if only(o.key)]
    return read_listed(storage, predictions_prefix(model, day), listed)


def readable(read: list[ReadManifest]) -> list[FileManifest]:
    """The manifests that could be read (the others left out)."""
    return [r.manifest for r in read if r.manifest is not None]
