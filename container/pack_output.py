"""One output for many small input files: a pack.

A day delivered as thousands of files of a hundred rows made one output and one
manifest per file, and those, not the model, set the pace: encoding, hashing and
publishing each (about a millisecond here), two PUTs per file on S3 and two GETs per
file each time the orchestration tallies the day. So consecutive files of at most
``PACKED_FILE_MAX_ROWS`` rows that one model scores are gathered in memory and
published together: one Parquet file (``<first stem>.packed-<n>.parquet``, one row
group, each input's rows contiguous and in input order) and one manifest that lists
the inputs with their rows (``FileManifest.packed``).

A pack is all or nothing, like a file's output: an instance killed before the pack
is published leaves none of it, and a rerun scores its files again. The
orchestration removes a pack whose inputs must be re-scored before it submits the
rerun, so no row is ever in two outputs.
"""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow as pa

from container.contract import (
    PACK_MAX_FILES,
    PACK_MAX_ROWS,
    PACKED_FILE_MAX_ROWS,
    FileManifest,
    PackedInput,
    add_predictor_rows,
    manifest_relative_path,
    output_relative_path,
    pack_manifest_relative_path,
    pack_output_relative_path,
)
from container.errors import JobInputError
from container.file_output import predictor_fields, publish_encoded
from container.prediction_stats import PredictionStats
from container.scored_files import OpenedFile


def is_packed(opened: OpenedFile) -> bool:
    """Whether the file's output goes into a pack rather than a file of its own."""
    return opened.rows <= PACKED_FILE_MAX_ROWS


class PackOutput:
    """Small files' outputs for one model, gathered until the pack is full."""

    def __init__(self, schema: pa.Schema, output_root: Path, scratch: Path,
                 stats: PredictionStats) -> None:
        self.schema = schema
        self.output_root = output_root
        self.scratch = scratch
        self.stats = stats
        self.started = time.time()
        self.inputs: list[PackedInput] = []
        self.tables: list[pa.Table] = []
        self.predict_seconds = 0.0
        self.predictor_rows: dict[str, int] = {}

    @property
    def rows(self) -> int:
        return sum(i.rows for i in self.inputs)

    def fits(self, schema: pa.Schema, rows: int) -> bool:
        """Whether a file of ``rows`` rows whose output has ``schema`` can join."""
        return (len(self.inputs) < PACK_MAX_FILES and self.rows + rows <= PACK_MAX_ROWS
                and schema.equals(self.schema, check_metadata=True))

    def add(self, opened: OpenedFile, tables: list[pa.Table],
            predict_seconds: float, predictor_rows: dict[str, int]) -> None:
        """One whole input file's output rows (its row groups' tables, in order);
        JobInputError if they are not as many as its footer says (as for a file of
        its own, ``FileOutput.publish``)."""
        rows = sum(t.num_rows for t in tables)
        if rows != opened.rows:
            raise JobInputError(f"input file {opened.file.relative}: footer says "
                                f"{opened.rows} rows but {rows} were read")
        self.tables += tables  # statistics at publish: one pass, not one per file
        self.inputs.append(PackedInput(opened.file.relative, opened.file.source.stat().st_size,
                                       rows))
        self.predict_seconds += predict_seconds
        add_predictor_rows(self.predictor_rows, predictor_rows)

    def publish(self, manifest_fields: dict) -> FileManifest:
        """Write the output in one row group, then its manifest. A pack of one file
        is published under that file's own names, with no ``packed`` list."""
        first, count = self.inputs[0].input, len(self.inputs)
        alone = count == 1
        table = pa.concat_tables(self.tables) if self.tables else self.schema.empty_table()
        self.stats.add_table(table)
        return publish_encoded(
            table, self.schema, self.output_root, self.scratch,
            output_relative=output_relative_path(first) if alone
            else pack_output_relative_path(first, count),
            manifest_relative=manifest_relative_path(first) if alone
            else pack_manifest_relative_path(first, count),
            manifest=dict(
                input=first, input_bytes=sum(i.input_bytes for i in self.inputs),
                rows_in=self.rows, rows_out=self.rows, predictions=self.stats.summary(),
                started_at=self.started, predict_seconds=round(self.predict_seconds, 6),
                packed=None if alone else list(self.inputs),
                **predictor_fields(self.predictor_rows), **manifest_fields),
            row_group_rows=PACK_MAX_ROWS,
        )
