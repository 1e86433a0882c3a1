"""Deterministic synthetic data with a real signal, for the demo and the tests.

Customers with 32 numeric features (about 2% missing), a categorical ``segment``
(some missing) and, in the training data, three targets with a real signal, so
every registered model learns something measurable: ``label`` (churn, 0/1) drawn
from a logistic model with an interaction term, ``value`` (a continuous customer
value, negative for customers who cost more than they bring) for regression, and
``tier`` (``basic``/``plus``/``premium``) for multiclass classification.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from batch_assets.planning.layout import SUCCESS_MARKER, data_prefix, success_marker_key
from resources.storage import ObjectStorage

N_FEATURES = 32
SEGMENTS = ("retail", "smb", "enterprise", "public", "education")
TIERS = ("basic", "plus", "premium")  # the multiclass target of the training data
MISSING_RATE = 0.02


@dataclass(frozen=True)
class DemoDataSpec:
    dataset: str = "customers"
    days: tuple[str, ...] = ("2026-11-01", "2026-11-02", "2026-11-03")
    files_per_day: int = 8
    rows_per_file: int = 42_000
    training_rows: int = 200_000
    training_prefix: str = "training/customers/"
    seed: int = 20261101


def feature_names() -> list[str]:
    return [f"f{i:02d}" for i in range(N_FEATURES)]


def make_rows(rows: int, first_id: int, seed: int, with_label: bool) -> pa.Table:
    """One table of customers; rows depend only on (seed, first_id)."""
    rng = np.random.default_rng([seed, first_id])
    features = rng.normal(size=(rows, N_FEATURES)).astype(np.float32)
    segment_index = rng.integers(0, len(SEGMENTS), size=rows)
    weights = np.linspace(1.2, -1.0, N_FEATURES) * (np.arange(N_FEATURES) % 3 != 2)
    segment_effect = np.array([0.8, 0.2, -0.6, 0.0, 0.4])[segment_index]
    logit = features @ weights / 3 + 0.9 * features[:, 0] * features[:, 1] + segment_effect
    columns: dict[str, pa.Array] = {
        "customer_id": pa.array(np.arange(first_id, first_id + rows, dtype=np.int64)),
    }
    for index, name in enumerate(feature_names()):
        values = features[:, index]
        missing = rng.random(rows) < MISSING_RATE
        columns[name] = pa.array(values, mask=missing, type=pa.float32())
    segment_missing = rng.random(rows) < MISSING_RATE
    columns["segment"] = pa.array(
        [None if m else SEGMENTS[i] for i, m in zip(segment_index, segment_missing, strict=False)],
        type=pa.string(),
    )
    if with_label:
        probability = 1 / (1 + np.exp(-logit))
        columns["label"] = pa.array((rng.random(rows) < probability).astype(np.int8))
        # drawn after the churn label, so the columns above stay as they were
        value = (1.5 * features[:, 0] - features[:, 2] + 0.8 * features[:, 3] * features[:, 4]
                 + 0.5 * np.abs(features[:, 5]) + 2 * segment_effect
                 + 0.5 * rng.standard_normal(rows))
        columns["value"] = pa.array(value.astype(np.float64))
        score = features[:, 6] + 0.7 * features[:, 7] + 0.5 * rng.standard_normal(rows)
        tiers = np.array(TIERS)[np.digitize(score, [-0.5, 0.7])]
        columns["tier"] = pa.array(tiers.tolist(), type=pa.string())
    return pa.table(columns)


def write_table(storage: ObjectStorage, table: pa.Table, key: str) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "part.parquet"
        pq.write_table(table, path, row_group_size=16_384, write_page_checksum=True)
        storage.upload_file(path, key)


def generate_demo_data(storage: ObjectStorage, spec: DemoDataSpec = DemoDataSpec()) -> dict:
    """Write training data and daily inference data; parts already complete are kept.

    A day counts as delivered when its ``_SUCCESS`` marker exists; the marker is
    written after every file of the day, as a real producer would.
    """
    written = {"training_files": 0, "days": 0, "files": 0, "rows": 0}
    training_key = f"{spec.training_prefix}part-00000.parquet"
    if not storage.exists(training_key):
        write_table(storage, make_rows(spec.training_rows, 0, spec.seed, True), training_key)
        written["training_files"] += 1
    for day_index, day in enumerate(spec.days):
        if storage.exists(success_marker_key(spec.dataset, day)):
            continue
        for file_index in range(spec.files_per_day):
            first_id = 10**9 * (day_index + 1) + file_index * spec.rows_per_file
            table = make_rows(spec.rows_per_file, first_id, spec.seed, False)
            key = f"{data_prefix(spec.dataset, day)}part-{file_index:05d}.parquet"
            write_table(storage, table, key)
            written["files"] += 1
            written["rows"] += table.num_rows
        storage.write_bytes(data_prefix(spec.dataset, day) + SUCCESS_MARKER, b"")
        written["days"] += 1
    return written
