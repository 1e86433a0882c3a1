"""Who runs a Dagster run's steps, and whether that process is still alive.

A run worker that is SIGKILLed (OOM killer, evicted pod, closed laptop) cannot
say that it died. Its job-store records and its Dagster run would stay "in
flight" forever, holding the partition and the pool slot. So each step that
owns records registers its process (host, pid, start time) in the job store and
renews a heartbeat while it works; anyone may then ask whether the owner lives:

* on the same host the process table answers at once (a pid that is gone, or
  reused by a younger process, is dead);
* across hosts only the heartbeat answers: no renewal within the lease is dead.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass

import psutil

log = logging.getLogger(__name__)

# a pid's start time is known to about a clock tick; allow for it
_START_TIME_SLACK_SECONDS = 2.0


@dataclass(frozen=True)
class ProcessIdentity:
    """One process, told apart from a later process that reuses its pid."""

    host: str
    pid: int
    started_at: float  # epoch seconds when the process started


def this_process() -> ProcessIdentity:
    return ProcessIdentity(socket.gethostname(), psutil.Process().pid,
                           psutil.Process().create_time())


def local_process_alive(pid: int, started_before: float | None = None) -> bool:
    """Is ``pid`` a live process on this host (not a zombie), started no later than
    ``started_before`` (when given: a younger process reusing the pid does not count)?"""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        created = process.create_time()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:
        return True
    return started_before is None or created <= started_before + _START_TIME_SLACK_SECONDS


def process_alive(identity: ProcessIdentity) -> bool | None:
    """True or False for a process of this host; None for another host's (unknowable here)."""
    if identity.host != socket.gethostname():
        return None
    return local_process_alive(identity.pid, identity.started_at)


class Heartbeat:
    """Calls ``beat()`` every ``interval`` seconds on a daemon thread while open.

    A failed beat is logged and tried again at the next interval: a heartbeat
    that cannot be written only makes others judge the owner sooner, it never
    fails the step that owns it.
    """

    def __init__(self, beat: Callable[[], None], interval: float, name: str) -> None:
        self._beat = beat
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat-{name}",
                                        daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._beat()
            except Exception as exc:  # logged; the next beat tries again
                log.warning("heartbeat not written (%s: %s); retrying in %.0f s",
                            type(exc).__name__, exc, self._interval)
