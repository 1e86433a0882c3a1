"""Publish files atomically: write under a scratch name, then rename into place."""

from __future__ import annotations

import json
import os
from pathlib import Path


def publish(temp_path: Path, final_path: Path) -> None:
    """Move a finished file to its final name in one rename.

    Readers (and SageMaker's Continuous upload) see either nothing or the whole
    file, never a prefix of it.
    """
    final_path.parent.mkdir(parents=True, exist_ok=True)
    os.replace(temp_path, final_path)


def write_json_atomically(data: dict, final_path: Path, scratch_dir: Path) -> None:
    scratch_dir.mkdir(parents=True, exist_ok=True)
    temp_path = scratch_dir / f"{final_path.name}.{os.getpid()}.tmp"
    temp_path.write_text(json.dumps(data, indent=2, sort_keys=True))
    publish(temp_path, final_path)
