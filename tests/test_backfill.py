"""A 30-day x 2-model backfill through the Dagster UI's API, on the local backend.

`dagster dev` (webserver + daemon) serves a fresh instance; the test launches the
backfill with the same GraphQL mutation the UI's "Materialize" dialog sends and
waits for it. Slow (about 60 runs), so it runs in the slow suite.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import date, timedelta
from pathlib import Path

import pytest

from batch_assets.demo import LOCAL_INSTANCE_CONFIG
from batch_assets.demo_data import DemoDataSpec, generate_demo_data
from resources.job_store import SQLiteJobStore
from resources.storage import LocalBucketStorage
from tests.conftest import write_test_registry

DAYS = [(date(2026, 10, 1) + timedelta(days=i)).isoformat() for i in range(30)]
MODELS = ("churn_xgb", "churn_logreg")


def _graphql(url: str, query: str, variables: dict | None = None) -> dict:
    request = urllib.request.Request(url, json.dumps({"query": query, "variables": variables or {}})
                                     .encode(), {"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_thirty_day_two_model_backfill_completes(tmp_path, trained_template):
    bucket = tmp_path / ".data" / "bucket"
    shutil.copytree(trained_template / "models", bucket / "models")
    storage = LocalBucketStorage(root=str(bucket))
    generate_demo_data(storage, DemoDataSpec(days=tuple(DAYS), files_per_day=2,
                                             rows_per_file=300, training_rows=10))
    registry = write_test_registry(tmp_path / "models.toml", instance_count=1)
    registry.write_text(registry.read_text().replace('"2026-11-01"', '"2026-10-01"'))
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(LOCAL_INSTANCE_CONFIG.read_text())
    (tmp_path / "workspace.yaml").write_text(
        "load_from:\n  - python_module:\n      module_name: batch_assets.definitions\n"
        "      working_directory: .\n")
    port = _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "BATCH_MODEL_REGISTRY": str(registry),
           "PYTHONWARNINGS": "ignore"}
    dagster = str(Path(sys.executable).with_name("dagster"))
    server = subprocess.Popen([dagster, "dev", "-w", "workspace.yaml", "-p", str(port)],
                              cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}/graphql"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if _graphql(url, "{ version }").get("data"):
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "dagster dev did not start"
            time.sleep(1)
        launched = _graphql(url, """
            mutation($params: LaunchBackfillParams!) {
              launchPartitionBackfill(backfillParams: $params) {
                __typename ... on LaunchBackfillSuccess { backfillId }
                ... on PythonError { message } } }""",
            {"params": {"assetSelection": [{"path": ["predictions", m]} for m in MODELS],
                        "partitionNames": DAYS}})
        outcome = launched["data"]["launchPartitionBackfill"]
        assert outcome["__typename"] == "LaunchBackfillSuccess", outcome
        backfill_id = outcome["backfillId"]
        deadline = time.monotonic() + 1500
        status = None
        while time.monotonic() < deadline:
            status = _graphql(url, """query($id: String!) {
                partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill { status } }
                }""", {"id": backfill_id})["data"]["partitionBackfillOrError"]["status"]
            if status in ("COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED",
                          "CANCELED"):
                break
            time.sleep(5)
        assert status in ("COMPLETED", "COMPLETED_SUCCESS"), status
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(60)
    store = SQLiteJobStore(path=str(tmp_path / ".data" / "jobs.sqlite3"))
    # one run and one job per day, scoring both models
    records = [r for day in DAYS for r in store.attempts("score_customers", day)]
    assert len(records) == 30 and {r.status for r in records} == {"Completed"}
    bucket = tmp_path / ".data" / "bucket"
    for model in MODELS:
        for day in DAYS:
            assert len(list((bucket / f"predictions/{model}/dt={day}/_manifests").glob(
                "*.json"))) == 2, (model, day)
    spans = sorted((r.started_at, r.ended_at) for r in records)
    assert all(b[0] >= a[1] for a, b in itertools.pairwise(spans)), \
        "the one-slot processing pool let two jobs overlap"
