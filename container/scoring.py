"""The scoring pipeline: row groups scored on a thread pool, written in input order.

Why threads and row groups:

- Parquet decoding (pyarrow), XGBoost's ``inplace_predict`` and NumPy's kernels
  all release the GIL, so one process with one thread per core keeps every core
  busy without a process pool's start-up, per-process model copy and pickling.
- The unit of work is one row group of one file, not one file, so a shard of a
  single big file is scored by every core, and a shard of many small files is
  balanced across them.
- Each worker reads its row group in record batches of ``batch_rows``; memory is
  bounded by the number of workers times a row group's compressed size plus a
  batch, never by the file size.
- Results are consumed strictly in input order, so each output file's rows keep
  the input's order and an output is complete the moment its last row group is
  written. At most ``2 x workers`` results wait ahead of the writer.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from container.contract import FileManifest, ModelMetadata
from container.errors import JobInputError
from container.file_output import FileOutput, output_schema
from container.frameworks.base import FrameworkModel
from container.prediction_columns import checked_predictions, prediction_arrays
from container.prediction_stats import PredictionStats
from container.schema_check import check_columns, open_parquet

log = logging.getLogger("container.scoring")

UNITS_AHEAD_PER_WORKER = 2


@dataclass(frozen=True)
class InputFile:
    source: Path
    relative: str  # path relative to the data input folder, e.g. "part-00001.parquet"


@dataclass(frozen=True)
class OpenedFile:
    """What the footer says, read once before scoring."""

    file: InputFile
    rows: int
    row_groups: int
    schema: pa.Schema  # keys + passthrough + prediction columns, as written


def _unreadable(relative: str, exc: BaseException) -> JobInputError:
    return JobInputError(
        f"input file {relative} could not be read ({type(exc).__name__}: {exc}). "
        "The file is probably corrupt: re-deliver it."
    )


def open_input(file: InputFile, model: ModelMetadata) -> OpenedFile:
    """Read the file's footer once: check its schema against the model (errors name
    the file and column) and note its rows and row groups."""
    parquet_file = open_parquet(file.source, file.relative)
    schema = parquet_file.schema_arrow
    check_columns(schema, file.relative, model)
    return OpenedFile(file, parquet_file.metadata.num_rows,
                      parquet_file.metadata.num_row_groups, output_schema(schema, model))


def first_batch(files: list[OpenedFile], columns: list[str],
                rows: int = 4_096) -> pa.RecordBatch | None:
    """The first rows of the first non-empty file (``None`` if all are empty): where
    a fast predictor is checked against the framework before it scores anything."""
    for opened in files:
        if opened.rows:
            try:
                parquet_file = pq.ParquetFile(opened.file.source)
                return next(parquet_file.iter_batches(batch_size=rows, columns=columns))
            except (pa.ArrowException, OSError) as exc:
                raise _unreadable(opened.file.relative, exc) from exc
    return None


def _read_batches(opened: OpenedFile, row_group: int, batch_rows: int,
                  columns: list[str]) -> Iterator[pa.RecordBatch]:
    """The row group's record batches; a read error names the file (and only a read
    error: what the consumer does with a batch is not the file's fault)."""
    try:
        parquet_file = pq.ParquetFile(opened.file.source, page_checksum_verification=True)
        yield from parquet_file.iter_batches(batch_size=batch_rows, row_groups=[row_group],
                                             columns=columns, use_threads=False)
    except (pa.ArrowException, OSError) as exc:
        raise _unreadable(opened.file.relative, exc) from exc


def score_row_group(model: FrameworkModel, metadata: ModelMetadata, opened: OpenedFile,
                    row_group: int, batch_rows: int) -> pa.Table:
    """Read one row group batch by batch, predict each batch, return keys +
    passthrough + prediction columns."""
    copied = [*metadata.key_columns, *metadata.passthrough_columns]
    batches: list[pa.RecordBatch] = []
    for batch in _read_batches(opened, row_group, batch_rows, metadata.input_columns):
        where = f"{batch.num_rows} rows of input file {opened.file.relative}"
        scored = checked_predictions(model.predict(batch), metadata, batch.num_rows, where)
        columns = [batch.column(name) for name in copied]
        columns += prediction_arrays(scored, metadata)
        batches.append(pa.RecordBatch.from_arrays(columns, schema=opened.schema))
    return pa.Table.from_batches(batches, schema=opened.schema)


class ScoringPipeline:
    """Scores a list of files with ``workers`` threads and publishes each file's
    output and manifest as soon as it is complete."""

    def __init__(self, model: FrameworkModel, metadata: ModelMetadata, workers: int,
                 batch_rows: int, output_root: Path, scratch: Path,
                 manifest_fields: dict) -> None:
        self.model = model
        self.metadata = metadata
        self.workers = workers
        self.batch_rows = batch_rows
        self.output_root = output_root
        self.scratch = scratch
        self.manifest_fields = manifest_fields

    def run(self, files: list[OpenedFile],
            progress: Progress | None = None) -> list[FileManifest]:
        """Score every file; on the first failure cancel what has not started, let
        running row groups end, drop the unfinished output, and raise that failure."""
        manifests: list[FileManifest] = []
        units = ((opened, group) for opened in files for group in range(opened.row_groups))
        with ThreadPoolExecutor(self.workers, thread_name_prefix="score") as pool:
            in_flight: deque[Future[pa.Table]] = deque()
            try:
                for opened in files:
                    manifests.append(self._score_file(opened, pool, units, in_flight,
                                                      progress))
                    if progress is not None:
                        progress.file_done()
            finally:
                for future in in_flight:
                    future.cancel()
        return manifests

    def _score_file(self, opened: OpenedFile, pool: ThreadPoolExecutor,
                    units: Iterator[tuple[OpenedFile, int]],
                    in_flight: deque[Future[pa.Table]],
                    progress: Progress | None) -> FileManifest:
        output = FileOutput(opened.file.relative, opened.file.source, opened.rows,
                            opened.schema, self.output_root, self.scratch,
                            PredictionStats.for_model(self.metadata))
        try:
            for _ in range(opened.row_groups):
                self._top_up(pool, units, in_flight)
                scored = in_flight.popleft().result()
                output.write(scored)
                if progress is not None:
                    progress.rows_written(scored.num_rows)
        except BaseException:
            output.discard()
            raise
        return output.publish(self.manifest_fields)

    def _top_up(self, pool: ThreadPoolExecutor, units: Iterator[tuple[OpenedFile, int]],
                in_flight: deque[Future[pa.Table]]) -> None:
        while len(in_flight) < self.workers * UNITS_AHEAD_PER_WORKER:
            unit = next(units, None)
            if unit is None:
                return
            in_flight.append(pool.submit(score_row_group, self.model, self.metadata,
                                         unit[0], unit[1], self.batch_rows))


class Progress:
    """Logs files, rows and throughput: after each published file, and at least
    every ``interval`` seconds while a big file is still being written."""

    def __init__(self, host: str, files_total: int, rows_total: int, started: float,
                 interval: float = 15.0) -> None:
        self.host, self.files_total, self.rows_total = host, files_total, rows_total
        self.started, self.interval = started, interval
        self.files = 0
        self.rows = 0
        self.logged_at = started

    def rows_written(self, rows: int) -> None:
        self.rows += rows
        if time.monotonic() - self.logged_at >= self.interval:
            self._log()

    def file_done(self) -> None:
        self.files += 1
        self._log()

    def _log(self) -> None:
        now = time.monotonic()
        self.logged_at = now
        log.info("%s: %d/%d files, %d/%d rows, %.0f rows/s", self.host, self.files,
                 self.files_total, self.rows, self.rows_total,
                 self.rows / max(now - self.started, 1e-9))
