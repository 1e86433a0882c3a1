"""Is a run alive? Verdicts on the owner of a job record, and on a Dagster run.

Evidence, strongest first:

1. the Dagster run ended (its status says so);
2. the owner's process on this host is gone, or its pid now belongs to a younger
   process (``resources.liveness``);
3. the owner runs on another host and has not renewed its heartbeat within the
   job store's lease (judged only for runs that hold jobs: the heartbeat runs
   while a step owns jobs).

A run that never reached one of our steps (killed while its step waited for a
pool slot) has no owner record; its worker's pid comes from the run's own start
event, which is trusted only where run workers share this host.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import dagster as dg

from resources.job_store import OwnerStore
from resources.liveness import local_process_alive, process_alive


@dataclass(frozen=True)
class Verdict:
    alive: bool
    reason: str


def job_owner_verdict(instance: dg.DagsterInstance, job_store: OwnerStore, run_id: str,
                      current_run_id: str | None = None) -> Verdict:
    """Whether the run that owns a job record still works on it."""
    if run_id == current_run_id:
        return Verdict(True, "this run owns it")
    run = instance.get_run_by_id(run_id)
    if run is not None and run.is_finished:
        return Verdict(False, f"its run {run_id} ended {run.status.value}")
    owner = job_store.owner(run_id)
    if owner is None:
        if run is None:
            return Verdict(False, f"its run {run_id} is unknown to this Dagster instance "
                                  "and left no owner record")
        return run_worker_verdict(instance, job_store, run)
    local = process_alive(owner.identity)
    where = f"pid {owner.pid} on {owner.host}"
    if local is not None:
        return Verdict(local, f"its run {run_id} ({where}) is "
                              f"{'alive' if local else 'gone'}")
    age = time.time() - owner.heartbeat_at
    if age > job_store.lease_seconds:
        return Verdict(False, f"its run {run_id} ({where}) sent no heartbeat for {age:.0f} s "
                              f"(lease {job_store.lease_seconds:.0f} s)")
    return Verdict(True, f"its run {run_id} ({where}) renewed its heartbeat {age:.0f} s ago")


def run_worker_verdict(instance: dg.DagsterInstance, job_store: OwnerStore,
                       run: dg.DagsterRun) -> Verdict:
    """Whether the process executing a started Dagster run still exists.

    Only a process seen gone on this host counts as dead: a run on another host
    may wait for a pool slot for hours without any heartbeat, so silence alone
    never kills a Dagster run (Dagster's run monitoring covers those launchers).
    """
    owner = job_store.owner(run.run_id)
    if owner is not None:
        local = process_alive(owner.identity)
        if local is None:
            return Verdict(True, f"its worker runs on {owner.host}, not here")
        return Verdict(local, f"its worker (pid {owner.pid}) is "
                              f"{'alive' if local else 'gone'}")
    if not job_store.run_workers_on_this_host:
        return Verdict(True, "its worker's host is unknown (run_workers_on_this_host=false)")
    start = _run_start(instance, run.run_id)
    if start is None:
        return Verdict(True, "its worker has not started the run yet")
    pid, started_at = start
    alive = local_process_alive(pid, started_before=started_at)
    return Verdict(alive, f"its worker (pid {pid}) is {'alive' if alive else 'gone'}")


def _run_start(instance: dg.DagsterInstance, run_id: str) -> tuple[int, float] | None:
    """(pid, time) of the run's start event, written by the process that executes it."""
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.RUN_START, limit=1).records
    if not records:
        return None
    entry = records[0].event_log_entry
    pid = entry.dagster_event.pid if entry.dagster_event else None
    return (pid, entry.timestamp) if pid else None
