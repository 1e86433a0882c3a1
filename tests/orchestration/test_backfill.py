"""A 30-day x 2-model backfill through the Dagster UI's API, on the local backend.

`dagster dev` (webserver + daemon) serves a fresh instance; the test launches the
backfill with the same GraphQL mutation the UI's "Materialize" dialog sends and
waits for it. Slow (about 60 runs), so it runs in the slow suite.
"""

from __future__ import annotations

import itertools
import json
import shutil
from datetime import date, timedelta

import pytest

from batch_assets.dev.demo_data import DemoDataSpec, generate_demo_data
from benchmarks.dagster_dev import DagsterDev
from container.contract import FileManifest
from resources.job_store import SQLiteJobStore
from resources.storage import LocalBucketStorage
from tests.conftest import write_test_registry
from tests.support.registries import edit_registry, setting

DAYS = [(date(2026, 10, 1) + timedelta(days=i)).isoformat() for i in range(30)]
MODELS = ("churn_xgb", "churn_logreg")


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_thirty_day_two_model_backfill_completes(tmp_path, trained_template):
    bucket = tmp_path / ".data" / "bucket"
    shutil.copytree(trained_template / "models", bucket / "models")
    storage = LocalBucketStorage(root=str(bucket))
    generate_demo_data(storage, DemoDataSpec(days=tuple(DAYS), files_per_day=2,
                                             rows_per_file=300, training_rows=10))
    registry = write_test_registry(tmp_path / "models.toml", instance_count=1)
    edit_registry(registry, lambda data: setting(data, "partitions_start_date", "2026-10-01"))
    with DagsterDev(tmp_path, {"BATCH_MODEL_REGISTRY": str(registry)}) as dev:
        backfill = dev.launch_backfill([["predictions", m] for m in MODELS], DAYS)
        status = dev.wait_for_backfill(backfill, timeout=1500, poll_seconds=5)
    assert status in ("COMPLETED", "COMPLETED_SUCCESS"), status
    store = SQLiteJobStore(path=str(tmp_path / ".data" / "jobs.sqlite3"))
    # one run and one job per day, scoring both models
    records = [r for day in DAYS for r in store.attempts("score_customers", day)]
    assert len(records) == 30 and {r.status for r in records} == {"Completed"}
    bucket = tmp_path / ".data" / "bucket"
    for model in MODELS:  # each day's two 300-row files, packed by the one instance
        for day in DAYS:
            manifests = [FileManifest.from_dict(json.loads(p.read_text())) for p in
                         (bucket / f"predictions/{model}/dt={day}/_manifests").glob("*.json")]
            covered = sorted(c.input for m in manifests for c in m.covered)
            assert len(manifests) == 1 and covered == sorted(
                p.name for p in (bucket / f"data/customers/dt={day}").glob("*.parquet")
            ) and manifests[0].rows_out == 600, (model, day, covered)
    spans = sorted((r.started_at, r.ended_at) for r in records)
    assert all(b[0] >= a[1] for a, b in itertools.pairwise(spans)), \
        "the one-slot processing pool let two jobs overlap"
