"""Check an engine's output: every input row once, predictions equal to the
framework's own within 1e-6 on a sample."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from benchmarks.models import load_framework_model
from benchmarks.workloads import KEY_COLUMN, Workload
from container.contract import MANIFEST_DIR, PREDICTION_COLUMN

SAMPLE_ROWS = 2_000
TOLERANCE = 1e-6


def verify_output(workload: Workload, output_dir: Path) -> None:
    """Raise ``AssertionError`` naming what is wrong with the output."""
    files = sorted(p for p in output_dir.rglob("*.parquet") if MANIFEST_DIR not in p.parts)
    assert files, f"no output files under {output_dir}"
    output = ds.dataset(files, format="parquet").to_table(columns=[KEY_COLUMN, PREDICTION_COLUMN])
    ids = output.column(KEY_COLUMN).to_numpy()
    expected_rows = workload.spec.rows
    assert len(ids) == expected_rows, f"{len(ids)} output rows, expected {expected_rows}"
    assert len(np.unique(ids)) == expected_rows, "some input rows were scored twice"
    first = pq.ParquetFile(workload.input_files[0]).read_row_group(0)
    rng = np.random.default_rng(0)
    picks = np.sort(rng.choice(first.num_rows, min(SAMPLE_ROWS, first.num_rows),
                               replace=False))
    sample = first.take(picks).to_pandas()
    model, metadata = load_framework_model(workload.model_dir)
    expected = model.predict_proba(sample[metadata["features"]])[:, 1]
    scored = output.filter(pc.is_in(output.column(KEY_COLUMN),
                                    value_set=first.column(KEY_COLUMN).take(picks)))
    by_id = dict(zip(scored.column(KEY_COLUMN).to_pylist(),
                     scored.column(PREDICTION_COLUMN).to_pylist(), strict=True))
    got = np.array([by_id[key] for key in sample[KEY_COLUMN]])
    worst = float(np.max(np.abs(got - expected)))
    assert worst <= TOLERANCE, (
        f"predictions differ from the framework's by up to {worst:.2e} (> {TOLERANCE})"
    )
