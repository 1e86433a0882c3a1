"""Liveness verdicts: the process table on this host, heartbeats across hosts."""

from __future__ import annotations

import subprocess
import sys
import time

import dagster as dg
import pytest

from batch_assets.jobs.owner_liveness import job_owner_verdict
from resources.job_store import SQLiteJobStore
from resources.liveness import (
    Heartbeat,
    ProcessIdentity,
    local_process_alive,
    process_alive,
    this_process,
)


@pytest.fixture
def store(tmp_path) -> SQLiteJobStore:
    return SQLiteJobStore(path=str(tmp_path / "jobs.sqlite3"), lease_seconds=5.0)


def test_a_killed_process_and_a_reused_pid_are_dead():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    me = this_process()
    identity = ProcessIdentity(me.host, child.pid, time.time())
    assert process_alive(identity) is True
    # the same pid, but the process we knew started long before this one: pid reused
    assert local_process_alive(child.pid, started_before=time.time() - 3600) is False
    child.kill()
    child.wait()
    assert process_alive(identity) is False
    assert process_alive(ProcessIdentity("another-host", me.pid, me.started_at)) is None


def test_owner_on_another_host_is_judged_by_its_heartbeat(store):
    instance = dg.DagsterInstance.ephemeral()
    store.register_owner("far-run", ProcessIdentity("another-host", 1234, time.time()))
    verdict = job_owner_verdict(instance, store, "far-run")
    assert verdict.alive and "renewed its heartbeat" in verdict.reason
    with store._connect() as db:  # the heartbeat went silent 30 s ago
        db.execute("UPDATE run_owners SET heartbeat_at=? WHERE run_id='far-run'",
                   (time.time() - 30,))
    verdict = job_owner_verdict(instance, store, "far-run")
    assert not verdict.alive and "no heartbeat for 30 s (lease 5 s)" in verdict.reason


def test_owner_on_this_host_is_judged_by_its_process(store):
    instance = dg.DagsterInstance.ephemeral()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    me = this_process()
    store.register_owner("near-run", ProcessIdentity(me.host, child.pid, time.time()))
    assert job_owner_verdict(instance, store, "near-run").alive
    child.kill()
    child.wait()
    verdict = job_owner_verdict(instance, store, "near-run")
    assert not verdict.alive and f"pid {child.pid}" in verdict.reason
    unknown = job_owner_verdict(instance, store, "never-seen")
    assert not unknown.alive and "unknown to this Dagster instance" in unknown.reason
    assert job_owner_verdict(instance, store, "never-seen", current_run_id="never-seen").alive


def test_heartbeat_renews_while_open_and_survives_a_failing_write(store):
    store.register_owner("run-1", this_process())
    first = store.owner("run-1").heartbeat_at
    calls = []

    def beat():
        calls.append(time.time())
        if len(calls) == 1:
            raise OSError("disk full")  # the next beat must still happen
        store.heartbeat("run-1")

    with Heartbeat(beat, 0.05, "run-1"):
        time.sleep(0.4)
    assert len(calls) >= 3
    renewed = store.owner("run-1").heartbeat_at
    assert renewed > first
    time.sleep(0.15)
    assert store.owner("run-1").heartbeat_at == renewed  # stopped when closed
