"""The scoring pipeline: row groups scored on a thread pool, written in input order.

Why threads and row groups:

- Parquet decoding (pyarrow), XGBoost's ``inplace_predict`` and NumPy's kernels
  all release the GIL, so one process with one thread per core keeps every core
  busy without a process pool's start-up, per-process model copy and pickling.
- The unit of work is one row group of one file, not one file, so a shard of a
  single big file is scored by every core, and a shard of many small files is
  balanced across them; small row groups, of one file or of several, are packed
  into one unit of up to ``batch_rows`` rows and predicted together
  (``container.units``), so a day of thousands of tiny files pays a predict call
  and a thread-pool round trip per unit, not per file.
- Each worker reads its row group in record batches of ``batch_rows``; memory is
  bounded by the number of workers times a row group's compressed size plus a
  batch, never by the file size.
- Results are consumed strictly in input order, so each output file's rows keep
  the input's order and an output is complete the moment its last row group is
  written. At most ``2 x workers`` results wait ahead of the writer.
- Several models in one job (``ScoringPlan``): each row group is read and
  decoded once, with the union of the models' columns, and each batch is scored
  by every model that needs the file; outputs, statistics and manifests stay per
  model. A model that fails (its artifact, a column its files lack, predictions
  of the wrong shape) drops out and the others finish; the job then fails naming
  it, and a rerun scores only what is missing, per model.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from container.contract import FileManifest, add_predictor_rows
from container.errors import JobInputError
from container.file_output import FileOutput, output_schema
from container.pack_output import PackOutput, is_packed
from container.prediction_stats import PredictionStats
from container.schema_check import check_columns, read_footer
from container.scored_files import InputFile, OpenedFile, ScoredModel
from container.units import Part, PartResult, plan_units, score_unit, unreadable

log = logging.getLogger("container.scoring")

UNITS_AHEAD_PER_WORKER = 2


def open_inputs(files: list[InputFile]) -> list[OpenedFile]:
    """Every file's footer, read once before any compute. A file whose
    Parquet schema and key-value metadata equal the file before it shares that file's
    Arrow schema object: converting a schema and hashing it in the checks cost about
    75 microseconds per file, as much as a tenth of a tiny file's whole work, and
    thousands of files of one delivery almost always share one schema."""
    opened: list[OpenedFile] = []
    previous: OpenedFile | None = None
    for file in files:
        metadata = read_footer(file.source, file.relative)
        if (previous is not None and metadata.schema.equals(previous.metadata.schema)
                and metadata.metadata == previous.metadata.metadata):
            schema = previous.input_schema
        else:
            schema = metadata.schema.to_arrow_schema()
        previous = OpenedFile(file, metadata.num_rows, metadata.num_row_groups, schema,
                              metadata)
        opened.append(previous)
    return opened


def first_batch(files: list[OpenedFile], columns: list[str],
                rows: int = 4_096) -> tuple[pa.RecordBatch, str] | None:
    """The first rows of the first non-empty file and its name (``None`` if all are
    empty): where a fast predictor is checked against the framework before it scores
    anything."""
    for opened in files:
        if opened.rows:
            try:
                with pa.OSFile(str(opened.file.source)) as handle:
                    parquet_file = pq.ParquetFile(handle, metadata=opened.metadata)
                    batch = next(parquet_file.iter_batches(batch_size=rows, columns=columns))
                    return batch, opened.file.relative
            except (pa.ArrowException, OSError) as exc:
                raise unreadable(opened.file.relative, exc) from exc
    return None


class ScoringPipeline:
    """Scores a list of files with ``workers`` threads for every model and publishes
    each file's output and manifest, per model, as soon as it is complete."""

    def __init__(self, models: list[ScoredModel], workers: int, batch_rows: int,
                 scratch: Path) -> None:
        self.models = models
        self.workers = workers
        self.batch_rows = batch_rows
        self.scratch = scratch

    def run(self, files: list[OpenedFile],
            progress: Progress | None = None) -> list[FileManifest]:
        """Score every file; a read failure cancels what has not started, lets running
        units end, drops the unfinished outputs and is raised. A model's failure
        drops only that model's unfinished output; its other files are skipped."""
        manifests: list[FileManifest] = []
        checked: dict[tuple[str, int], pa.Schema] = {}
        self._file_schemas = {opened.file.relative: self._schemas(opened, checked)
                              for opened in files}
        self._packs: dict[str, PackOutput] = {}  # model -> its open pack of small files
        units = plan_units(files, self.batch_rows)
        with ThreadPoolExecutor(self.workers, thread_name_prefix="score") as pool:
            in_flight: deque[Future[list[PartResult]]] = deque()
            parts = self._part_results(pool, units, in_flight)
            try:
                for opened in files:
                    if is_packed(opened):
                        manifests += self._score_small_file(opened, parts, progress)
                    else:
                        manifests += self._score_file(opened, parts, progress)
                    if progress is not None:
                        progress.file_done()
            except JobInputError:  # a read error: the packs hold whole files, keep them
                manifests += self._publish_packs()
                raise
            except BaseException:
                self._packs.clear()
                raise
            finally:
                for future in in_flight:
                    future.cancel()
        return manifests + self._publish_packs()

    def _schemas(self, opened: OpenedFile,
                 checked: dict[tuple[str, int], pa.Schema]) -> dict[str, pa.Schema]:
        """Each model's output schema for this file (the input's key and passthrough
        types); a model whose columns the file lacks fails here, before any compute.
        ``checked`` remembers each schema a model accepted: thousands of small files
        of one schema are checked once (a failing check is not remembered, so its
        error names the file at hand)."""
        schemas = {}
        for target in self.models:
            if not target.scores(opened.file.relative):
                continue
            key = (target.name, id(opened.input_schema))  # shared by files (open_inputs)
            if key not in checked:
                try:
                    check_columns(opened.input_schema, opened.file.relative, target.metadata)
                except JobInputError as exc:
                    target.fail(exc, f"on input file {opened.file.relative}")
                    continue
                checked[key] = output_schema(opened.input_schema, target.metadata)
            schemas[target.name] = checked[key]
        return schemas

    def _part_results(self, pool: ThreadPoolExecutor, units: Iterator[list[Part]],
                      in_flight: deque[Future[list[PartResult]]]) -> Iterator[PartResult]:
        """Every row group's result in input order, keeping ``UNITS_AHEAD_PER_WORKER``
        units per worker submitted ahead of the writer."""
        while True:
            while len(in_flight) < self.workers * UNITS_AHEAD_PER_WORKER:
                unit = next(units, None)
                if unit is None:
                    break
                in_flight.append(pool.submit(score_unit, self.models, unit, self.batch_rows,
                                             self._file_schemas))
            if not in_flight:
                return
            yield from in_flight.popleft().result()

    def _score_small_file(self, opened: OpenedFile, parts: Iterator[PartResult],
                          progress: Progress | None) -> list[FileManifest]:
        """Score a small file into each model's pack (``container.pack_output``); returns
        the manifests of packs that filled up and were published."""
        relative = opened.file.relative
        schemas = self._file_schemas[relative]
        targets = [m for m in self.models if m.scores(relative) and m.name in schemas]
        tables: dict[str, list[pa.Table]] = {m.name: [] for m in targets}
        seconds = dict.fromkeys(tables, 0.0)
        paths: dict[str, dict[str, int]] = {name: {} for name in tables}
        for _ in range(opened.row_groups):
            result = next(parts)
            if result.read_error is not None:
                raise result.read_error
            for target in targets:
                if target.name not in tables:
                    continue
                error = result.errors.get(target.name) or target.failure
                if error is not None or target.name not in result.tables:
                    target.fail(error or RuntimeError("no output"),
                                f"on input file {relative}")
                    del tables[target.name]
                    continue
                tables[target.name].append(result.tables[target.name])
                seconds[target.name] += result.seconds.get(target.name, 0.0)
                add_predictor_rows(paths[target.name], result.predictors.get(target.name, {}))
            if progress is not None:
                progress.rows_written(result.rows)
        published = []
        for target in targets:
            if target.name not in tables:
                continue  # failed: its pack keeps the whole files before this one
            schema = schemas[target.name]
            pack = self._packs.get(target.name)
            if pack is not None and not pack.fits(schema, opened.rows):
                published.append(pack.publish(target.manifest_fields))
                pack = None
            if pack is None:
                pack = self._packs[target.name] = PackOutput(
                    schema, target.output_root, self.scratch,
                    PredictionStats.for_model(target.metadata))
            pack.add(opened, tables[target.name], seconds[target.name], paths[target.name])
        return published

    def _publish_packs(self) -> list[FileManifest]:
        """Publish every open pack (each holds whole files only)."""
        by_name = {m.name: m for m in self.models}
        packs, self._packs = self._packs, {}
        return [pack.publish(by_name[name].manifest_fields) for name, pack in packs.items()]

    def _score_file(self, opened: OpenedFile, parts: Iterator[PartResult],
                    progress: Progress | None) -> list[FileManifest]:
        relative = opened.file.relative
        schemas = self._file_schemas[relative]
        outputs = {
            m.name: (m, FileOutput(relative, opened.file.source, opened.rows,
                                   schemas[m.name], m.output_root, self.scratch,
                                   PredictionStats.for_model(m.metadata), m.name))
            for m in self.models if m.scores(relative) and m.name in schemas
        }
        try:
            for _ in range(opened.row_groups):
                result = next(parts)
                if result.read_error is not None:
                    raise result.read_error
                for name, (target, output) in list(outputs.items()):
                    error = result.errors.get(name) or target.failure
                    if error is not None or name not in result.tables:
                        target.fail(error or RuntimeError("no output"),
                                    f"on input file {relative}")
                        output.discard()
                        del outputs[name]
                        continue
                    output.write(result.tables[name], result.seconds.get(name, 0.0),
                                 result.predictors.get(name))
                if progress is not None:
                    progress.rows_written(result.rows)
            return [output.publish(target.manifest_fields)
                    for target, output in outputs.values()]
        except BaseException:
            for _target, output in outputs.values():
                output.discard()
            raise


class Progress:
    """Logs files, rows and throughput: after a published file (at most one line per
    ``file_interval`` seconds, and after the last file: a shard of thousands of tiny
    files must not write a line per file), and at least every ``interval`` seconds
    while a big file is still being written."""

    def __init__(self, host: str, files_total: int, rows_total: int, started: float,
                 interval: float = 15.0, file_interval: float = 1.0) -> None:
        self.host, self.files_total, self.rows_total = host, files_total, rows_total
        self.started, self.interval, self.file_interval = started, interval, file_interval
        self.files = 0
        self.rows = 0
        self.logged_at = started

    def rows_written(self, rows: int) -> None:
        self.rows += rows
        if time.monotonic() - self.logged_at >= self.interval:
            self._log()

    def file_done(self) -> None:
        self.files += 1
        if (self.files == self.files_total
                or time.monotonic() - self.logged_at >= self.file_interval):
            self._log()

    def _log(self) -> None:
        now = time.monotonic()
        self.logged_at = now
        log.info("%s: %d/%d files, %d/%d rows, %.0f rows/s", self.host, self.files,
                 self.files_total, self.rows, self.rows_total,
                 self.rows / max(now - self.started, 1e-9))
