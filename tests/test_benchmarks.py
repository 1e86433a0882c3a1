"""The benchmark harness: it runs every engine, checks their output, and reports.

Timings are never asserted (this machine is noisy); what is asserted is that the
harness measures real runs, rejects wrong output, and writes its table and chart.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from benchmarks.verify import verify_output
from benchmarks.workloads import KEY_COLUMN, prepare, workload_specs

ROOT = Path(__file__).resolve().parents[1]


def test_tiny_run_writes_table_json_and_chart(tmp_path):
    results = tmp_path / "results"
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--mode", "tiny", "--workloads", "W1,W3",
         "--engines", "seed,engine,machine limit", "--work-dir", str(tmp_path / "work"),
         "--results", str(results)],
        cwd=ROOT, capture_output=True, text=True, timeout=280,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    rows = json.loads((results / "tiny.json").read_text())
    measured = {(row["workload"], row["engine"]) for row in rows}
    assert measured == {("W1", "seed"), ("W1", "engine"), ("W1", "machine limit"),
                        ("W3", "seed"), ("W3", "engine")}
    for row in rows:
        assert row["error"] is None
        assert row["rows"] == {"W1": 12_000, "W3": 30_000}[row["workload"]]
        assert row["rows_per_second"] > 0 and row["peak_rss_bytes"] > 10 * 2**20
    limit = next(row for row in rows if row["engine"] == "machine limit")
    assert set(limit["details"]) >= {"decode_seconds", "predict_seconds", "encode_seconds"}
    table = (results / "tiny.txt").read_text()
    assert "x seed" in table and "time / limit" in table and "peak RSS" in table
    assert (results / "tiny.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def scored_w1(tmp_path_factory):
    """The tiny W1 workload and a correct output of it (the framework's own)."""
    from benchmarks.models import load_framework_model

    root = tmp_path_factory.mktemp("verify")
    workload = prepare(workload_specs("tiny")[0], root)
    model, metadata = load_framework_model(workload.model_dir)
    out = root / "out"
    out.mkdir()
    for path in workload.input_files:
        frame = pq.read_table(path).to_pandas()
        frame["prediction"] = model.predict_proba(frame[metadata["features"]])[:, 1]
        frame[[KEY_COLUMN, "prediction"]].to_parquet(out / path.name)
    return workload, out


def copy_output(good: Path, tmp_path: Path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(good, out)
    return out


def rewrite_first_file(out: Path, change) -> None:
    path = sorted(out.glob("*.parquet"))[0]
    pq.write_table(change(pq.read_table(path)), path)


def test_verification_accepts_the_frameworks_output(scored_w1):
    workload, out = scored_w1
    verify_output(workload, out)


def test_verification_rejects_a_prediction_off_by_more_than_1e_6(scored_w1, tmp_path):
    workload, good = scored_w1
    out = copy_output(good, tmp_path)

    def nudge(table: pa.Table) -> pa.Table:
        shifted = pc.add(table.column("prediction"), 1e-5)
        return table.set_column(1, "prediction", shifted)

    rewrite_first_file(out, nudge)
    with pytest.raises(AssertionError, match="differ from the framework"):
        verify_output(workload, out)


def test_verification_rejects_missing_and_duplicated_rows(scored_w1, tmp_path):
    workload, good = scored_w1
    out = copy_output(good, tmp_path)
    rewrite_first_file(out, lambda table: table.slice(0, table.num_rows - 1))
    with pytest.raises(AssertionError, match="output rows"):
        verify_output(workload, out)
    rewrite_first_file(out, lambda table: pa.concat_tables([table, table.slice(0, 1)]))
    with pytest.raises(AssertionError, match="scored twice"):
        verify_output(workload, out)
