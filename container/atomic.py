"""Publish files atomically: write under a scratch name, then rename into place.

Folders are created only when a write finds them missing: a shard of thousands of
small files publishes into a handful of folders, and a ``mkdir`` per file and per
manifest was a measurable part of its time.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def publish(temp_path: Path, final_path: Path) -> None:
    """Move a finished file to its final name in one rename.

    Readers (and SageMaker's Continuous upload) see either nothing or the whole
    file, never a prefix of it.
    """
    try:
        os.replace(temp_path, final_path)
    except FileNotFoundError:  # the folder is new (a missing temp file fails again)
        final_path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(temp_path, final_path)


def write_bytes_atomically(data: bytes, temp_path: Path, final_path: Path) -> None:
    """Write ``data`` under ``temp_path`` (a scratch name), then publish it."""
    try:
        handle = open(temp_path, "wb")  # noqa: SIM115 (closed below)
    except FileNotFoundError:
        temp_path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(temp_path, "wb")  # noqa: SIM115
    with handle:
        handle.write(data)
    publish(temp_path, final_path)


def write_json_atomically(data: dict, final_path: Path, scratch_dir: Path) -> None:
    """Compact JSON (the C encoder; ``indent`` would use the pure-Python one, which
    was a tenth of a millisecond per manifest), keys sorted."""
    write_bytes_atomically(json.dumps(data, sort_keys=True).encode(),
                           scratch_dir / f"{final_path.name}.{os.getpid()}.tmp", final_path)
