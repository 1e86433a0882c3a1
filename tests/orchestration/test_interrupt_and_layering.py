"""A run interrupted while waiting stops its job; the container imports no Dagster."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from resources.processing import LocalProcessing
from tests.orchestration.test_local_runner import pid_alive, request, wait_for
from tests.support.helpers import interrupted_after


def test_interrupt_while_waiting_stops_the_job(tmp_path, storage_with_data):
    jobs = LocalProcessing(work_dir=str(tmp_path / "jobs"), poll_interval_seconds=0.1,
                           stop_grace_seconds=2.0, keep_instance_dirs=True,
                           ).jobs(storage_with_data)
    client = jobs.client
    client.create_processing_job(**request("interrupted", "sleep", 2))
    statuses = []
    with interrupted_after(4.0):
        jobs.wait("interrupted", logging.getLogger("test"),
                  lambda status, _d: statuses.append(status))
    described = wait_for(client, "interrupted", {"Stopped", "Completed", "Failed"}, timeout=30)
    assert described["ProcessingJobStatus"] == "Stopped"
    assert statuses == ["InProgress", "Stopping"]
    pid_files = list((tmp_path / "jobs/interrupted").rglob("*.pid"))
    assert len(pid_files) == 2, "instances had not started before the interrupt"
    assert not any(pid_alive(int(p.read_text())) for p in pid_files)


def test_container_package_imports_no_dagster():
    code = ("import sys, container.__main__, container.infer, container.train; "
            "bad = [m for m in sys.modules if m.split('.')[0] in "
            "('dagster', 'batch_assets', 'resources', 'boto3')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.fixture
def storage_with_data(tmp_path):
    from resources.storage import LocalBucketStorage

    storage = LocalBucketStorage(root=str(tmp_path / "bucket"))
    for i in range(3):
        storage.write_bytes(f"data/d/dt=2026-11-01/part-{i}.parquet", b"x")
    storage.write_bytes("models/m/v1/model.json", b"{}")
    return storage

