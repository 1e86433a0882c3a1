"""The benchmark harness: it runs every engine, checks their output, and reports.

Timings are never asserted (this machine is noisy); what is asserted is that the
harness measures real runs, rejects wrong output, and writes its table and chart.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from benchmarks.report import Row, render_table, target_checks
from benchmarks.verify import verify_output
from benchmarks.workloads import KEY_COLUMN, network_workload_specs, prepare, workload_specs

ROOT = Path(__file__).resolve().parents[2]


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


def installed(*modules: str) -> bool:
    return all(importlib.util.find_spec(name) is not None for name in modules)


needs_networks = pytest.mark.skipif(
    not installed("torch", "tensorflow", "keras", "onnx", "onnxruntime", "tf2onnx"),
    reason="the network workloads need the frameworks extra")


@needs_networks
def test_tiny_network_run_measures_every_path_and_verifies_it(tmp_path):
    """W4 (TorchScript) and W5 (Keras) with a 40-16-16-1 MLP on 12,000 rows: the seed,
    the framework at its best, ONNX Runtime and the engine each run, and each output
    is checked against the framework's own predictions within 1e-5."""
    results = tmp_path / "results"
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--mode", "tiny", "--workloads", "W4,W5",
         "--work-dir", str(tmp_path / "work"), "--results", str(results),
         "--results-name", "networks"],
        cwd=ROOT, capture_output=True, text=True, timeout=280,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    rows = json.loads((results / "networks.json").read_text())
    paths = ["seed", "framework best", "onnx runtime", "engine"]
    assert [(row["workload"], row["engine"]) for row in rows] == [
        (workload, path) for workload in ("W4", "W5") for path in paths]
    for row in rows:
        assert row["error"] is None
        assert row["rows"] == 12_000 and row["rows_per_second"] > 0
        assert 0 <= row["max_difference"] <= 1e-5  # verified against the framework's
    engines = {row["workload"]: row for row in rows if row["engine"] == "engine"}
    # what the engine chose per its manifests: the framework or ONNX Runtime (or both,
    # by batch size)
    assert "torch" in engines["W4"]["predictor"] or "ONNX" in engines["W4"]["predictor"]
    assert "Keras" in engines["W5"]["predictor"] or "ONNX" in engines["W5"]["predictor"]
    baselines = {(row["workload"], row["engine"]): row for row in rows}
    assert set(baselines["W5", "framework best"]["details"]) >= {
        "load_seconds", "scoring_seconds", "batch_rows"}
    assert baselines["W4", "onnx runtime"]["predictor"].startswith("ONNX Runtime, batch ")
    assert "batch 32" in baselines["W5", "seed"]["predictor"]
    table = (results / "networks.txt").read_text()
    assert "time / fastest" in table and "predictor" in table
    assert not (results / "tiny.json").exists()  # --results-name


def network_row(engine: str, seconds: float, **extra) -> Row:
    return Row(workload="W4", description="torch MLP", engine=engine, rows=1_000_000,
               seconds=seconds, runs=[seconds], peak_rss_bytes=2**28, input_bytes=2**27,
               **extra)


def test_network_targets_compare_the_engine_with_the_fastest_other_path():
    rows = [network_row("seed", 30.0), network_row("framework best", 12.0),
            network_row("onnx runtime", 10.0,
                        details={"load_seconds": 0.4, "scoring_seconds": 9.6}),
            network_row("engine", 10.5, predictor="ONNX Runtime (torch.onnx.export)",
                        max_difference=2e-7,
                        details={"startup_seconds": 3.0, "scoring_seconds": 7.5})]
    table = render_table(rows)
    engine_line = next(line for line in table.splitlines() if "| engine  " in line
                       and "W4" in line)
    assert "| 2.86 " in engine_line and "| 1.05 " in engine_line  # x seed, time / fastest
    assert "ONNX Runtime (torch.onnx.export)" in engine_line
    checks = target_checks(rows)
    assert "W4: engine 2.86x seed (target >= 2.0x): met" in checks
    assert ("W4: engine time 1.05x the fastest other path (onnx runtime) "
            "(target <= 1.1x): met") in checks
    assert "W4: the engine scored with ONNX Runtime (torch.onnx.export)" in checks
    rows[2] = network_row("onnx runtime", 9.0)
    assert any(line.startswith("W4: engine time 1.17x") and line.endswith("MISSED")
               for line in target_checks(rows))


def score_with_framework(workload, out: Path) -> None:
    """A correct output of ``workload``: the framework's own predictions."""
    from benchmarks.models import load_framework_model

    model, metadata = load_framework_model(workload.model_dir)
    out.mkdir()
    for path in workload.input_files:
        frame = pq.read_table(path).to_pandas()
        frame["prediction"] = model.predict_proba(frame[metadata["features"]])[:, 1]
        frame[[KEY_COLUMN, "prediction"]].to_parquet(out / path.name)


@pytest.fixture(scope="module")
def scored_w1(tmp_path_factory):
    """The tiny W1 workload and a correct output of it (the framework's own)."""
    root = tmp_path_factory.mktemp("verify")
    workload = prepare(workload_specs("tiny")[0], root)
    score_with_framework(workload, root / "out")
    return workload, root / "out"


@pytest.fixture(scope="module")
def scored_w4(tmp_path_factory):
    """The tiny W4 workload (TorchScript MLP) and the module's own output."""
    if not installed("torch"):
        pytest.skip("torch is not installed")
    root = tmp_path_factory.mktemp("verify_network")
    workload = prepare(network_workload_specs("tiny")[0], root)
    score_with_framework(workload, root / "out")
    return workload, root / "out"


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


def shift_predictions(by: float):
    def shift(table: pa.Table) -> pa.Table:
        return table.set_column(1, "prediction", pc.add(table.column("prediction"), by))
    return shift


def test_network_outputs_are_verified_within_the_float32_tolerance(scored_w4, tmp_path):
    """1e-5 for networks: a float32 difference of 1e-6 passes, 1e-4 does not."""
    workload, good = scored_w4
    assert verify_output(workload, good) < 1e-6  # the same module, other batch sizes
    out = copy_output(good, tmp_path)
    rewrite_first_file(out, shift_predictions(1e-6))
    assert 5e-7 < verify_output(workload, out) <= 1e-5
    rewrite_first_file(out, shift_predictions(1e-4))
    with pytest.raises(AssertionError, match=r"differ from the framework.*\(> 1e-05\)"):
        verify_output(workload, out)


def test_multi_model_cost_split_recovers_shared_and_per_model_seconds():
    """One-job seconds of exactly 0.8 s shared + 0.2 s per model: the fit finds both,
    and the K = 4 bound is 4 x 1.0 / 1.6 = 2.5x, with 3x needing 0.1 s per model."""
    from benchmarks.multi_model import Row, cost_split

    rows = [Row("linear", k, 0.8 + 0.2 * k, k * 1.0, True) for k in (1, 2, 4, 8)]
    (_blank, line) = cost_split(rows)
    assert "0.80 s shared + 0.20 s per model" in line
    assert "at most 2.50x faster" in line and "needs at most 0.10 s per model" in line
    flat = [Row("linear", k, 1.0, k * 1.0, True) for k in (1, 2)]
    assert "no cost split fitted" in cost_split(flat)[1]
