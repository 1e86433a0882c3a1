"""The prediction checks fail on real bad outputs and warn on real drift."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from batch_assets.checks.prediction_drift import population_stability_index
from batch_assets.dev.demo_data import make_rows, write_table
from batch_assets.planning.layout import data_prefix
from container.prediction_stats import PredictionStats
from tests.conftest import SMALL_DATA, run_checks_only

DAY1, DAY2 = SMALL_DATA.days


def _checks(result) -> dict:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_prediction_stats_accumulate_over_batches():
    stats = PredictionStats()
    stats.add(np.array([0.0, 0.05, 0.5]))
    stats.add(np.array([0.95, 1.0, np.nan, 1.5]))
    summary = stats.as_dict()
    assert summary["count"] == 7 and summary["nan_count"] == 1
    assert summary["min"] == 0.0 and summary["max"] == 1.5
    assert summary["outside_unit_interval"] == 1
    assert summary["histogram"] == [2, 0, 0, 0, 0, 1, 0, 0, 0, 2]
    assert summary["sum"] == pytest.approx(4.0)


def test_psi_is_zero_for_equal_and_large_for_shifted_distributions():
    assert population_stability_index([10, 20, 30], [20, 40, 60]) == pytest.approx(0.0)
    assert population_stability_index([50, 50, 0], [0, 50, 50]) > 1.0


def test_valid_check_fails_on_an_output_with_wrong_rows_and_columns(pipeline):
    key = (DAY1, "churn_xgb")
    assert all(e.passed for e in _checks(pipeline.score(*key)).values())
    out_dir = pipeline.storage.root_path / f"predictions/churn_xgb/dt={DAY1}"
    short = pq.read_table(out_dir / "part-00001.parquet").slice(0, 10)
    pq.write_table(short, out_dir / "part-00001.parquet")
    table = pq.read_table(out_dir / "part-00003.parquet")
    pq.write_table(table.append_column("extra", pa.array([1] * table.num_rows)),
                   out_dir / "part-00003.parquet")

    valid = _checks(run_checks_only(pipeline, *key))["predictions_valid"]
    assert not valid.passed
    problems = valid.metadata["problems"].value
    assert set(problems) == {"part-00001.parquet", "part-00003.parquet"}
    assert all(p.startswith("output damaged: ") and "manifest says" in p
               for p in problems.values()), problems
    assert valid.metadata["repairable"].value is True

    # manifests written before output_bytes was recorded: no size rule, so the footer's
    # row count and the schema check catch the same two files
    for manifest_path in (out_dir / "_manifests").glob("*.json"):
        manifest = json.loads(manifest_path.read_text())
        del manifest["output_bytes"]
        manifest_path.write_text(json.dumps(manifest))
    valid = _checks(run_checks_only(pipeline, *key))["predictions_valid"]
    problems = valid.metadata["problems"].value
    assert problems["part-00001.parquet"] == \
        "output damaged: footer says 10 rows, manifest says 2000"
    assert "extra" in problems["part-00003.parquet"]
    assert set(problems) == {"part-00001.parquet", "part-00003.parquet"}
    assert valid.metadata["repairable"].value is False, "a wrong schema is not re-scored"


def test_drift_check_passes_on_a_similar_day_and_warns_on_a_shifted_one(pipeline):
    for day in (DAY1, DAY2):
        pipeline.score(day, "churn_xgb")
    day2_checks = _checks(run_checks_only(pipeline, DAY2, "churn_xgb"))
    drift = day2_checks["predictions_drift"]
    assert drift.passed and drift.metadata["psi"].value < 0.05

    shifted_day = "2026-11-03"
    prefix = data_prefix("customers", shifted_day)
    for index in range(3):
        table = make_rows(2_000, 9 * 10**9 + index * 2_000, seed=99, with_label=False)
        for name in ("f00", "f01", "f02", "f03"):
            position = table.schema.get_field_index(name)
            table = table.set_column(position, name, pc.add(table.column(name), 2.5))
        write_table(pipeline.storage, table, f"{prefix}part-{index:05d}.parquet")
    pipeline.storage.write_bytes(prefix + "_SUCCESS", b"")
    shifted_run = pipeline.score(shifted_day, "churn_xgb")
    drift = _checks(shifted_run)["predictions_drift"]
    assert not drift.passed
    assert drift.severity.name == "WARN"
    assert drift.metadata["psi"].value > 0.2
    assert shifted_run.success, "a drift warning must not fail the run"


def test_a_corrupt_manifest_of_the_previous_day_leaves_the_drift_check_standing(pipeline):
    """One reader of a day's manifests, one error policy: an unreadable manifest of the
    day compared with is left out (it used to crash the check), and the day's own
    figures are the ones its tally read."""
    for day in (DAY1, DAY2):
        pipeline.score(day, "churn_xgb")
    manifests = sorted((pipeline.storage.root_path /
                        f"predictions/churn_xgb/dt={DAY1}/_manifests").glob("*.json"))
    manifests[0].write_text("{not json")
    drift = _checks(run_checks_only(pipeline, DAY2, "churn_xgb"))["predictions_drift"]
    assert drift.passed and drift.metadata["psi"].value < 0.05
    assert drift.metadata["compared_with"].value == DAY1
