"""The ``infer`` entrypoint: score this instance's shard of Parquet files.

Per input file it streams record batches (memory is bounded by the batch size,
not the file size), reads only key and feature columns, writes keys + prediction
to a scratch file, renames it into the output folder, and writes the file's
manifest last. A killed instance therefore leaves only whole outputs, each with
its manifest, and a rerun redoes exactly the files without one.
"""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from container.adapters import ModelAdapter, load_adapter
from container.atomic import publish, write_json_atomically
from container.contract import ProcessingEnvironment, available_cpus
from container.errors import JobInputError
from container.model_bundle import read_metadata
from container.parallelism import Parallelism, plan_parallelism
from container.prediction_stats import PredictionStats
from container.schema_check import check_input_file

log = logging.getLogger("container.infer")

DATA_INPUT = "data"
MODEL_INPUT = "model"
PREDICTIONS_OUTPUT = "predictions"
MANIFEST_DIR = "_manifests"
PREDICTION_COLUMN = "prediction"
DEFAULT_BATCH_ROWS = 65_536


@dataclass(frozen=True)
class InferOptions:
    batch_rows: int = DEFAULT_BATCH_ROWS
    workers: int | None = None
    threads_per_worker: int | None = None


@dataclass(frozen=True)
class FileTask:
    source: Path
    relative: str  # path relative to the data input folder, e.g. "part-00001.parquet"


def manifest_relative_path(relative_input: str) -> str:
    """Where a given input file's manifest goes, relative to the output folder."""
    return f"{MANIFEST_DIR}/{Path(relative_input).with_suffix('.json').as_posix()}"


def output_relative_path(relative_input: str) -> str:
    return Path(relative_input).with_suffix(".parquet").as_posix()


def find_input_files(data_dir: Path) -> list[FileTask]:
    """Every ``*.parquet`` file below the data input, in a stable order."""
    if not data_dir.is_dir():
        return []
    return [
        FileTask(path, path.relative_to(data_dir).as_posix())
        for path in sorted(data_dir.rglob("*.parquet"))
        if path.is_file() and not path.name.startswith(".")
    ]


# --- worker side -------------------------------------------------------------------

_worker_model: ModelAdapter | None = None


def _init_worker(bundle_dir: str, threads: int) -> None:
    """Load the model once per worker and cap every native thread pool to ``threads``."""
    global _worker_model
    from threadpoolctl import threadpool_limits

    threadpool_limits(threads)
    pa.set_cpu_count(threads)
    metadata = read_metadata(Path(bundle_dir))
    _worker_model = load_adapter(metadata, Path(bundle_dir), threads)


def score_file(
    task: FileTask, output_dir: str, scratch_dir: str, batch_rows: int, host: str,
    job_name: str,
) -> dict:
    """Score one file end to end and publish its output, then its manifest."""
    if _worker_model is None:
        raise RuntimeError("worker model not loaded: _init_worker must run first")
    model = _worker_model
    metadata = model.metadata
    started = time.time()
    output_root = Path(output_dir)
    scratch = Path(scratch_dir)
    scratch.mkdir(parents=True, exist_ok=True)
    temp_path = scratch / f"{task.relative.replace('/', '__')}.{os.getpid()}.tmp"
    rows_in = 0
    rows_out = 0
    stats = PredictionStats()
    try:
        parquet_file = pq.ParquetFile(task.source, page_checksum_verification=True)
        rows_in = parquet_file.metadata.num_rows
        key_fields = [parquet_file.schema_arrow.field(k) for k in metadata.key_columns]
        schema = pa.schema([*key_fields, pa.field(PREDICTION_COLUMN, pa.float64())])
        with pq.ParquetWriter(temp_path, schema, use_dictionary=False) as writer:
            for batch in parquet_file.iter_batches(
                batch_size=batch_rows, columns=metadata.input_columns, use_threads=False
            ):
                predictions = model.predict(batch)
                if len(predictions) != batch.num_rows:
                    raise JobInputError(
                        f"model {metadata.name!r} returned {len(predictions)} predictions for "
                        f"{batch.num_rows} rows of input file {task.relative}"
                    )
                stats.add(predictions)
                columns = [batch.column(k) for k in metadata.key_columns]
                columns.append(pa.array(predictions, type=pa.float64()))
                writer.write_batch(pa.RecordBatch.from_arrays(columns, schema=schema))
                rows_out += batch.num_rows
    except JobInputError:
        temp_path.unlink(missing_ok=True)
        raise
    except (pa.ArrowException, OSError) as exc:
        temp_path.unlink(missing_ok=True)
        raise JobInputError(
            f"input file {task.relative} could not be read ({type(exc).__name__}: {exc}). "
            "The file is probably corrupt: re-deliver it."
        ) from exc
    except BaseException:
        temp_path.unlink(missing_ok=True)
        raise
    if rows_out != rows_in:
        temp_path.unlink(missing_ok=True)
        raise JobInputError(
            f"input file {task.relative}: footer says {rows_in} rows but {rows_out} were read"
        )
    output_relative = output_relative_path(task.relative)
    publish(temp_path, output_root / output_relative)
    manifest = {
        "input": task.relative,
        "input_bytes": task.source.stat().st_size,
        "output": output_relative,
        "rows_in": rows_in,
        "rows_out": rows_out,
        "model_name": metadata.name,
        "model_version": metadata.version,
        "host": host,
        "job_name": job_name,
        "predictions": stats.as_dict(),
        "started_at": started,
        "finished_at": time.time(),
    }
    write_json_atomically(manifest, output_root / manifest_relative_path(task.relative), scratch)
    return manifest


# --- instance side -----------------------------------------------------------------


def run_infer(env: ProcessingEnvironment, options: InferOptions) -> list[dict]:
    """Score every file of this instance's shard; returns the manifests written."""
    inputs, outputs = env.channels((DATA_INPUT, MODEL_INPUT), (PREDICTIONS_OUTPUT,))
    bundle_dir = inputs[MODEL_INPUT]
    metadata = read_metadata(bundle_dir)
    load_adapter(metadata, bundle_dir)  # a bad artifact fails here, with its own message
    host = env.current_host()
    tasks = find_input_files(inputs[DATA_INPUT])
    if not tasks:
        log.info("%s: no input files in this shard; nothing to do", host)
        return []
    total_rows = sum(check_input_file(t.source, t.relative, metadata) for t in tasks)
    plan = plan_parallelism(
        available_cpus(), len(tasks), options.workers, options.threads_per_worker
    )
    log.info(
        "%s: %d files, %d rows, model %s version %s, %d workers x %d threads",
        host, len(tasks), total_rows, metadata.name, metadata.version,
        plan.workers, plan.threads_per_worker,
    )
    return _score_all(tasks, bundle_dir, outputs[PREDICTIONS_OUTPUT], env, options,
                      plan, host, total_rows)


def _score_all(
    tasks: list[FileTask],
    bundle_dir: Path,
    output_dir: Path,
    env: ProcessingEnvironment,
    options: InferOptions,
    plan: Parallelism,
    host: str,
    total_rows: int,
) -> list[dict]:
    """Run the files on a worker pool; on the first failure start nothing new, let
    running files finish (their outputs are good), then raise that failure."""
    job_name = env.job_config().get("ProcessingJobName", "")
    args = (str(output_dir), str(env.scratch_dir), options.batch_rows, host, job_name)
    started = time.monotonic()
    manifests: list[dict] = []
    rows_done = 0
    if plan.workers == 1:
        _init_worker(str(bundle_dir), plan.threads_per_worker)
        for task in tasks:
            manifests.append(score_file(task, *args))
            rows_done += manifests[-1]["rows_out"]
            _log_progress(host, len(manifests), len(tasks), rows_done, total_rows, started)
        return manifests
    with ProcessPoolExecutor(
        max_workers=plan.workers,
        mp_context=get_context("spawn"),
        initializer=_init_worker,
        initargs=(str(bundle_dir), plan.threads_per_worker),
    ) as pool:
        pending: set[Future] = {pool.submit(score_file, task, *args) for task in tasks}
        failure: BaseException | None = None
        while pending:
            done, pending = wait(pending, return_when=FIRST_EXCEPTION)
            for future in done:
                if future.cancelled():
                    continue
                error = future.exception()
                if error is not None:
                    failure = failure or error
                    continue
                manifests.append(future.result())
                rows_done += manifests[-1]["rows_out"]
                _log_progress(host, len(manifests), len(tasks), rows_done, total_rows, started)
            if failure is not None:
                for future in pending:
                    future.cancel()
        if isinstance(failure, BrokenProcessPool):
            raise RuntimeError(
                f"{host}: a worker process died while scoring (killed, or out of memory: "
                "lower batch_rows or workers in the model's inference settings)"
            ) from failure
        if failure is not None:
            raise failure
    return manifests


def _log_progress(
    host: str, files_done: int, files: int, rows_done: int, rows: int, started: float
) -> None:
    elapsed = max(time.monotonic() - started, 1e-9)
    log.info(
        "%s: %d/%d files, %d/%d rows, %.0f rows/s",
        host, files_done, files, rows_done, rows, rows_done / elapsed,
    )
