"""Baseline 2, the machine's limit: the work no engine can avoid, each part at its best.

With every input file already in memory: the time to decode the needed columns,
plus the model's predict over all rows on prepared features, plus the time to
encode keys + prediction, each using all cores. Each part is timed in the ways
that could be fastest (one call with all cores' native threads, or one thread
per core on slices) and the fastest counts. The predictor is the engine's own
(``container.frameworks``), i.e. the fastest one found that agrees with the
framework within 1e-6.

Run as ``python -m benchmarks.limit DATA_DIR MODEL_DIR``; prints JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from threadpoolctl import threadpool_limits

from container.contract import DEFAULT_BATCH_ROWS
from container.environment import available_cpus
from container.frameworks import load_model
from container.model_bundle import read_metadata


def timed(action) -> tuple[float, object]:
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def best_decode(blobs: list[bytes], columns: list[str], cpus: int) -> tuple[float, list]:
    def one(blob: bytes, threads: bool) -> pa.Table:
        return pq.read_table(pa.BufferReader(blob), columns=columns, use_threads=threads)

    column_parallel = timed(lambda: [one(b, True) for b in blobs])
    with ThreadPoolExecutor(cpus) as pool:
        file_parallel = timed(lambda: list(pool.map(lambda b: one(b, False), blobs)))
    return min(column_parallel, file_parallel, key=lambda pair: pair[0])


def best_predict(metadata, model_dir: Path, table: pa.Table, cpus: int) -> tuple[float, object]:
    """The fastest of: one call over all rows with ``cpus`` native threads; one
    single-threaded call per core on equal slices; single-threaded calls over
    batch-sized chunks on one thread per core (cache-friendly for memory-bound
    predictors such as a linear map)."""
    batch = table.combine_chunks().to_batches()[0]
    whole = load_model(metadata, model_dir, cpus)
    prepared = whole.prepare(batch)
    with threadpool_limits(cpus):
        one_call = timed(lambda: whole.predict_prepared(prepared))
    single = load_model(metadata, model_dir, 1)
    variants = [one_call]
    for rows in (-(-batch.num_rows // cpus), DEFAULT_BATCH_ROWS):
        parts = [single.prepare(batch.slice(start, rows))
                 for start in range(0, batch.num_rows, rows)]
        with threadpool_limits(1), ThreadPoolExecutor(cpus) as pool:
            variants.append(timed(lambda parts=parts: np.concatenate(
                list(pool.map(single.predict_prepared, parts)))))
    return min(variants, key=lambda pair: pair[0])


def encode_all(outputs: list[pa.Table], cpus: int) -> float:
    def one(table: pa.Table) -> int:
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, use_dictionary=False)
        return sink.getvalue().size

    with ThreadPoolExecutor(cpus) as pool:
        seconds, _ = timed(lambda: list(pool.map(one, outputs)))
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("model_dir", type=Path)
    args = parser.parse_args()
    cpus = available_cpus()
    metadata = read_metadata(args.model_dir)
    blobs = [path.read_bytes() for path in sorted(args.data_dir.glob("*.parquet"))]
    decode_seconds, tables = best_decode(blobs, metadata.input_columns, cpus)
    table = pa.concat_tables(tables)
    predict_seconds, predictions = best_predict(metadata, args.model_dir, table, cpus)
    outputs, offset = [], 0
    for part in tables:
        keys = part.select(metadata.key_columns)
        chunk = pa.array(predictions[offset:offset + part.num_rows], pa.float64())
        outputs.append(keys.append_column("prediction", chunk))
        offset += part.num_rows
    encode_seconds = encode_all(outputs, cpus)
    print(json.dumps({
        "decode_seconds": decode_seconds, "predict_seconds": predict_seconds,
        "encode_seconds": encode_seconds,
        "seconds": decode_seconds + predict_seconds + encode_seconds,
        "rows": table.num_rows,
    }))


if __name__ == "__main__":
    main()
