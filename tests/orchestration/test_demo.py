"""The demo: scores every demo partition through Dagster, and a rerun does no compute."""

from __future__ import annotations

import dagster as dg
import pytest

from batch_assets.dev.demo import main, run_demo
from batch_assets.dev.demo_data import DemoDataSpec, generate_demo_data
from resources.storage import LocalBucketStorage
from tests.conftest import write_test_registry

TINY = DemoDataSpec(days=("2026-11-01", "2026-11-02"), files_per_day=3, rows_per_file=1_000,
                    training_rows=4_000)


def test_demo_scores_everything_then_reruns_without_compute(tmp_path):
    registry = write_test_registry(tmp_path / "models.toml", instance_count=1,
                                   multiclass=False)  # the shipped models only
    instance = dg.DagsterInstance.ephemeral()
    first = run_demo(tmp_path / "data", registry, TINY, instance)
    assert first.models_trained == ["churn_xgb", "churn_logreg", "customer_value_xgb"]
    assert first.partitions == first.partitions_with_work == 6
    assert first.files == first.files_scored_now == 18
    assert first.rows == first.rows_scored_now == 18_000
    assert first.job_seconds > 0

    second = run_demo(tmp_path / "data", registry, TINY, instance)
    assert second.models_trained == []
    assert second.partitions == 6 and second.partitions_with_work == 0
    assert second.rows == 18_000 and second.rows_scored_now == 0
    lines = "\n".join(second.lines())
    assert "6 (0 ran a job, 6 were already complete)" in lines


def test_demo_data_is_deterministic(tmp_path):
    digests = []
    for name in ("a", "b"):
        storage = LocalBucketStorage(root=str(tmp_path / name))
        written = generate_demo_data(storage, TINY)
        assert written["files"] == 6 and written["rows"] == 6_000
        digests.append({o.key: storage.read_bytes(o.key) for o in storage.list_objects("data/")})
    assert digests[0] == digests[1]
    assert "data/customers/dt=2026-11-02/_SUCCESS" in digests[0]


def test_unknown_model_name_is_a_clear_error(tmp_path, capsys):
    code = main(["--data-dir", str(tmp_path), "--models", "churn_xgb,churn_rf"])
    assert code == 2
    error = capsys.readouterr().err
    assert "'churn_rf' is not in the model registry" in error
    assert "churn_xgb, churn_logreg, customer_value_xgb" in error


@pytest.mark.slow
def test_full_demo_command(tmp_path):
    """What `make demo` runs, at full size (1M rows, 24 files, 3 days, 3 models)."""
    import subprocess
    import sys

    command = [sys.executable, "-m", "batch_assets.dev.demo", "--data-dir", str(tmp_path / "d")]
    env = {"DAGSTER_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"}
    first = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "partitions scored   9 (9 ran a job" in first.stdout
    assert "processing jobs     3 (one per day" in first.stdout
    assert "files               72 (72 scored in this run)" in first.stdout
    second = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "9 (0 ran a job, 9 were already complete)" in second.stdout
