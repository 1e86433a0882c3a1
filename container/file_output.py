"""One input file's output: keys + passthrough columns + the model's prediction
columns (``container.contract.prediction_columns``) written to scratch (a small
output is encoded in memory and written in one call), renamed into the output
folder when complete, then the file's manifest.

A killed instance therefore leaves only whole outputs, each with its manifest,
and a rerun redoes exactly the files without one. The manifest records the
output's size and SHA-256, so an output damaged after it was published (truncated
or overwritten in the bucket) is told apart from an intact one by its size and
footer, and audits can prove the bytes are the ones the job wrote.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from container.atomic import publish, write_bytes_atomically, write_json_atomically
from container.contract import (
    DEFAULT_BATCH_ROWS,
    FileManifest,
    ModelMetadata,
    add_predictor_rows,
    describe_predictor_rows,
    manifest_relative_path,
    output_relative_path,
)
from container.errors import JobInputError
from container.prediction_columns import prediction_fields
from container.prediction_stats import PredictionStats

# outputs of at most this many rows are encoded in memory, then written in one call:
# pyarrow's file writer costs about 1 ms to open a file, encoding to a buffer 0.1 ms,
# and the digest then needs no second read. A unit of work holds this many rows in
# memory anyway (``DEFAULT_BATCH_ROWS``); bigger outputs stream to scratch.
IN_MEMORY_ROWS = DEFAULT_BATCH_ROWS


def output_schema(input_schema: pa.Schema, metadata: ModelMetadata) -> pa.Schema:
    """Keys and passthrough columns with the input's types, then the predictions."""
    copied = [input_schema.field(name)
              for name in [*metadata.key_columns, *metadata.passthrough_columns]]
    return pa.schema([*copied, *prediction_fields(metadata)])


class FileOutput:
    """Writes one input file's predictions, batch by batch, in input order.

    Dictionary encoding is off: predictions are high-entropy floats, for which a
    dictionary only costs time (measured: several times slower writes). Page
    checksums (CRC32 per data page) are on, so a reader that verifies them
    (``page_checksum_verification=True``) detects bytes damaged inside a page, which
    neither the size nor the footer reveals.
    """

    def __init__(self, relative_input: str, source: Path, rows_in: int,
                 schema: pa.Schema, output_root: Path, scratch: Path,
                 stats: PredictionStats, model_name: str = "",
                 in_memory_rows: int = IN_MEMORY_ROWS) -> None:
        self.relative_input = relative_input
        self.source = source
        self.rows_in = rows_in
        self.output_root = output_root
        self.scratch = scratch
        self.started = time.time()
        self.stats = stats
        self.rows_out = 0
        self.predict_seconds = 0.0
        self.predictor_rows: dict[str, int] = {}
        # one scratch folder for all models of a job: the model's name keeps their
        # outputs of the same input apart
        stem = f"{model_name}__{relative_input}" if model_name else relative_input
        self.temp_path = scratch / f"{stem.replace('/', '__')}.{os.getpid()}.tmp"
        self._buffer: pa.BufferOutputStream | None = None
        if rows_in <= in_memory_rows:
            self._buffer = pa.BufferOutputStream()
            sink: pa.BufferOutputStream | Path = self._buffer
        else:
            scratch.mkdir(parents=True, exist_ok=True)
            sink = self.temp_path
        self._writer = pq.ParquetWriter(sink, schema, use_dictionary=False,
                                        write_page_checksum=True)

    def write(self, table: pa.Table, predict_seconds: float = 0.0,
              predictor_rows: dict[str, int] | None = None) -> None:
        """Append the next rows (one input row group's worth: one output row group);
        ``predict_seconds``: what the model spent predicting them; ``predictor_rows``:
        how many of them each predictor path scored."""
        self.predict_seconds += predict_seconds
        add_predictor_rows(self.predictor_rows, predictor_rows or {})
        self.stats.add_table(table)
        self._writer.write_table(table)
        self.rows_out += table.num_rows

    def discard(self) -> None:
        """Drop a partial output (a failure elsewhere, or this file's own)."""
        self._writer.close()
        self.temp_path.unlink(missing_ok=True)

    def publish(self, manifest_fields: dict) -> FileManifest:
        """Close, check the row count, rename into place, then write the manifest.

        The manifest records ``output_bytes`` and ``output_sha256`` of the closed
        file: the tally counts a file as done only while its output still has that
        size (and a footer with ``rows_out`` rows).
        """
        self._writer.close()
        if self.rows_out != self.rows_in:
            self.temp_path.unlink(missing_ok=True)
            raise JobInputError(
                f"input file {self.relative_input}: footer says {self.rows_in} rows but "
                f"{self.rows_out} were read"
            )
        output_relative = output_relative_path(self.relative_input)
        final_path = self.output_root / output_relative
        if self._buffer is not None:  # hashed in memory, written and renamed whole
            data = self._buffer.getvalue()
            output_bytes = data.size
            output_sha256 = hashlib.sha256(data).hexdigest()
            write_bytes_atomically(data, self.temp_path, final_path)
        else:
            output_bytes = self.temp_path.stat().st_size
            output_sha256 = _sha256_of(self.temp_path)
            publish(self.temp_path, final_path)
        return _write_manifest(self.output_root, self.scratch,
                               manifest_relative_path(self.relative_input), dict(
            input=self.relative_input,
            input_bytes=self.source.stat().st_size,
            output=output_relative,
            output_bytes=output_bytes,
            output_sha256=output_sha256,
            rows_in=self.rows_in,
            rows_out=self.rows_out,
            predictions=self.stats.summary(),
            started_at=self.started,
            predict_seconds=round(self.predict_seconds, 6),  # packed units: microseconds
            **predictor_fields(self.predictor_rows),
            **manifest_fields,
        ))


def predictor_fields(rows: dict[str, int]) -> dict:
    """The manifest's record of which predictor paths scored how many rows."""
    return {"predictor": describe_predictor_rows(rows), "predictor_rows": dict(rows)}


def publish_encoded(table: pa.Table, schema: pa.Schema, output_root: Path, scratch: Path,
                    output_relative: str, manifest_relative: str, manifest: dict,
                    row_group_rows: int) -> FileManifest:
    """Encode ``table`` in memory, publish it whole at ``output_relative``, then its
    manifest (``manifest``: the fields other than the output's name, size, digest and
    finish time)."""
    buffer = pa.BufferOutputStream()
    with pq.ParquetWriter(buffer, schema, use_dictionary=False,
                          write_page_checksum=True) as writer:
        writer.write_table(table, row_group_size=row_group_rows)
    data = buffer.getvalue()
    temp_path = scratch / f"{output_relative.replace('/', '__')}.{os.getpid()}.tmp"
    write_bytes_atomically(data, temp_path, output_root / output_relative)
    return _write_manifest(output_root, scratch, manifest_relative, manifest | {
        "output": output_relative, "output_bytes": data.size,
        "output_sha256": hashlib.sha256(data).hexdigest()})


def _write_manifest(output_root: Path, scratch: Path, manifest_relative: str,
                    fields: dict) -> FileManifest:
    """The output's manifest, written last (its presence says the output is whole)."""
    manifest = FileManifest(**fields, finished_at=time.time())
    write_json_atomically(manifest.to_dict(), output_root / manifest_relative, scratch)
    return manifest


def _sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks (outputs are keys + a few columns per
    row, small next to the input, so this costs little next to scoring)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
