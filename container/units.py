"""Units of work for the scoring threads: row groups, small ones packed together.

A unit used to be one row group of one file. A day delivered as thousands of files
of a hundred rows then paid a thread-pool round trip and a predict call, with its
fixed set-up (a folded linear model evaluates column by column, tree libraries
set up per call), for every hundred rows. So consecutive row groups, of one file
or of the following ones, are packed into one unit until it holds ``batch_rows``
rows (or ``MAX_PARTS_PER_UNIT`` row groups, so the work still spreads over the
cores); a row group of ``batch_rows`` rows or more stays a unit of its own, and big
files are split across the cores exactly as before.

Within a unit each row group (a ``Part``) is read on its own, and for every model
the consecutive parts it scores whose columns have the same types are predicted
in one call; the predictions are split back per part, so each part still yields
its own table per model: one output row group per input row group, rows in input
order, and a file's output bytes are the same whatever the packing.

A part that cannot be read ends its unit: the parts before it keep their results
(their files are published), and its error is raised by the pipeline when it
reaches that part, as if every row group were a unit of its own.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from container.contract import add_predictor_rows
from container.errors import JobInputError
from container.prediction_columns import checked_predictions, prediction_arrays, unscored_rows

if TYPE_CHECKING:
    from container.scored_files import OpenedFile, ScoredModel

# row groups per unit at most: 64 files of 100 rows share one predict call, and
# 3,000 such files still make about 50 units, enough to keep every core busy
MAX_PARTS_PER_UNIT = 64


@dataclass(frozen=True)
class Part:
    """One row group of one input file (an ``OpenedFile``, see ``container.scoring``)."""

    opened: OpenedFile
    row_group: int
    rows: int

    @property
    def relative(self) -> str:
        return self.opened.file.relative


@dataclass
class PartResult:
    """One part scored by each model that scores its file: keys + passthrough +
    prediction columns per model, or the model's failure, and its predict time; or
    the part's read error (``read_error``), which fails the job."""

    tables: dict[str, pa.Table] = field(default_factory=dict)
    errors: dict[str, BaseException] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    # per model: rows of this part each predictor path scored
    predictors: dict[str, dict[str, int]] = field(default_factory=dict)
    rows: int = 0
    read_error: JobInputError | None = None


def unreadable(relative: str, exc: BaseException) -> JobInputError:
    return JobInputError(
        f"input file {relative} could not be read ({type(exc).__name__}: {exc}). "
        "The file is probably corrupt: re-deliver it."
    )


def read_batches(opened: OpenedFile, row_group: int, batch_rows: int,
                 columns: list[str]) -> Iterator[pa.RecordBatch]:
    """The row group's record batches; a read error names the file (and only a read
    error: what the consumer does with a batch is not the file's fault). The footer
    read before scoring is reused, not read again."""
    try:
        with pa.OSFile(str(opened.file.source)) as handle:  # no filesystem lookup
            parquet_file = pq.ParquetFile(handle, metadata=opened.metadata,
                                          page_checksum_verification=True)
            yield from parquet_file.iter_batches(batch_size=batch_rows,
                                                 row_groups=[row_group], columns=columns,
                                                 use_threads=False)
    except (pa.ArrowException, OSError) as exc:
        raise unreadable(opened.file.relative, exc) from exc


def needed_columns(models: list[ScoredModel]) -> list[str]:
    """Every column any of ``models`` reads, each once, in first-use order."""
    return list(dict.fromkeys(c for m in models for c in m.metadata.input_columns))


def plan_units(opened_files: list[OpenedFile], batch_rows: int,
               max_parts: int = MAX_PARTS_PER_UNIT) -> Iterator[list[Part]]:
    """The files' row groups in input order, packed into units of at most
    ``batch_rows`` rows and ``max_parts`` row groups (a bigger row group alone)."""
    unit: list[Part] = []
    rows = 0
    for opened in opened_files:
        for group in range(opened.row_groups):
            group_rows = opened.metadata.row_group(group).num_rows
            if unit and (rows + group_rows > batch_rows or len(unit) >= max_parts):
                yield unit
                unit, rows = [], 0
            unit.append(Part(opened, group, group_rows))
            rows += group_rows
    if unit:
        yield unit


def score_unit(models: list[ScoredModel], parts: list[Part], batch_rows: int,
               schemas: dict[str, dict[str, pa.Schema]]) -> list[PartResult]:
    """Read each part (decoded once, the union of its models' columns), predict
    each model's rows in as few calls as the parts' schemas allow, and return one
    result per part read (the last one may carry a read error instead).

    ``schemas``: per file, each model's output schema. One model's failure is that
    model's, on every part it scores here.
    """
    results: list[PartResult] = []
    segments: list[tuple[int, pa.RecordBatch]] = []  # (part index, batch) in input order
    for index, part in enumerate(parts):
        result = PartResult()
        results.append(result)
        targets = [m for m in models if m.scores(part.relative)]
        try:
            for batch in read_batches(part.opened, part.row_group, batch_rows,
                                      needed_columns(targets)):
                result.rows += batch.num_rows
                segments.append((index, batch))
        except JobInputError as exc:
            result.read_error = exc
            break
    for target in models:
        _predict_model(target, parts, results, segments, batch_rows, schemas)
    return results


def _predict_model(target: ScoredModel, parts: list[Part], results: list[PartResult],
                   segments: list[tuple[int, pa.RecordBatch]], batch_rows: int,
                   schemas: dict[str, dict[str, pa.Schema]]) -> None:
    """One model's predictions for every part of the unit it scores."""
    mine = [i for i, r in enumerate(results)
            if r.read_error is None and target.scores(parts[i].relative)]
    if not mine:
        return
    scored = set(mine)
    metadata = target.metadata
    copied = [*metadata.key_columns, *metadata.passthrough_columns]
    out: dict[int, list[pa.RecordBatch]] = {i: [] for i in mine}
    for chunk in _chunks([s for s in segments if s[0] in scored], batch_rows):
        batch = chunk[0][1] if len(chunk) == 1 else pa.concat_batches([b for _, b in chunk])
        where = _where(parts, chunk, batch.num_rows)
        started = time.perf_counter()
        try:
            features = target.inputs.prepare(batch, where)
            raw, record = target.model.predict_recorded(features)
            values = checked_predictions(raw, metadata, batch.num_rows, where)
            unscored = unscored_rows(values, metadata, where, target.inputs, features)
        except Exception as exc:  # the model's failure: the job's others go on
            for i in mine:
                results[i].errors[target.name] = exc
            return
        seconds = time.perf_counter() - started
        arrays = prediction_arrays(values, metadata, unscored)
        offset = 0
        for i, piece in chunk:
            rows = piece.num_rows
            results[i].seconds[target.name] = (results[i].seconds.get(target.name, 0.0)
                                               + seconds * rows / max(batch.num_rows, 1))
            add_predictor_rows(results[i].predictors.setdefault(target.name, {}),
                               record.counts(offset, offset + rows))
            columns = [piece.column(name) for name in copied]
            columns += [array.slice(offset, rows) for array in arrays]
            out[i].append(pa.RecordBatch.from_arrays(
                columns, schema=schemas[parts[i].relative][target.name]))
            offset += rows
    for i in mine:
        results[i].tables[target.name] = pa.Table.from_batches(
            out[i], schema=schemas[parts[i].relative][target.name])


def _chunks(segments: list[tuple[int, pa.RecordBatch]],
            batch_rows: int) -> Iterator[list[tuple[int, pa.RecordBatch]]]:
    """Consecutive segments predicted together: the same schema (types and metadata,
    so they concatenate as they are) and ``batch_rows`` rows at most."""
    chunk: list[tuple[int, pa.RecordBatch]] = []
    rows = 0
    for segment in segments:
        batch = segment[1]
        if chunk and (rows + batch.num_rows > batch_rows
                      or not batch.schema.equals(chunk[0][1].schema, check_metadata=True)):
            yield chunk
            chunk, rows = [], 0
        chunk.append(segment)
        rows += batch.num_rows
    if chunk:
        yield chunk


def _where(parts: list[Part], chunk: list[tuple[int, pa.RecordBatch]], rows: int) -> str:
    """Which rows a prediction call had, for error messages."""
    first, last = parts[chunk[0][0]].relative, parts[chunk[-1][0]].relative
    if first == last:
        return f"{rows} rows of input file {first}"
    return f"{rows} rows of input files {first} to {last}"
