"""Check an engine's output: every input row once, predictions equal to the
framework's own on a sample: within 1e-6 for trees and linear models, within 1e-5
for the float32 networks (W4, W5).

Why 1e-5 for networks: every unit of the MLP sums hundreds of float32 products, and
two correct float32 engines (oneDNN/MKL under PyTorch and TensorFlow, MLAS under
ONNX Runtime, one call with all threads or one thread per batch) sum them in
different orders, so their probabilities differ by a few float32 units in the last
place (measured here: about 2e-7). 1e-5 leaves fifty times that, and a path that
computes something else (a mis-exported operator, a missing value handled
otherwise) is off by far more on some row.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from benchmarks.models import load_framework_model
from benchmarks.workloads import KEY_COLUMN, Workload
from container.contract import MANIFEST_DIR, PREDICTION_COLUMN, FileManifest

SAMPLE_ROWS = 2_000
TOLERANCE = 1e-6
NETWORK_TOLERANCE = 1e-5


def tolerance_for(workload: Workload) -> float:
    return NETWORK_TOLERANCE if workload.spec.network else TOLERANCE


def verify_output(workload: Workload, output_dir: Path) -> float:
    """Raise ``AssertionError`` naming what is wrong with the output; returns the
    largest difference from the framework's predictions on the sample."""
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
    tolerance = tolerance_for(workload)
    assert worst <= tolerance, (
        f"predictions differ from the framework's by up to {worst:.2e} (> {tolerance})"
    )
    return worst


def manifest_predictors(output_dir: Path) -> list[str]:
    """The predictor paths that scored the rows, per the engine's manifests
    (``FileManifest.predictor_rows``), each once."""
    found: list[str] = []
    for path in sorted((output_dir / MANIFEST_DIR).rglob("*.json")):
        manifest = FileManifest.from_dict(json.loads(path.read_text()))
        found += [p for p in manifest.predictor_counts if p not in found]
    return found
