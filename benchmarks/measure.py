"""Run one engine as a child process tree; time it and sample the tree's memory.

Peak RSS is the largest sum of resident set sizes over the child and all its
descendants, sampled every ``SAMPLE_SECONDS``: a process pool's workers count,
which ``getrusage``'s per-process maximum would miss. Listing descendants scans
all of /proc, so the list is refreshed only every ``REFRESH_SECONDS``; the
sampler then costs about 1% of a core instead of 20%, which would otherwise be
taken from the engine under test.

The development machine is shared, so each run also records how busy the other
processes kept its CPUs: the machine's busy CPU time during the run minus the CPU
time of the engine's own process tree (``resource.getrusage(RUSAGE_CHILDREN)``: every
descendant, once waited for), in cores. On 2 cores, 0.1 is a quiet machine and 1.0
means half of it went elsewhere.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

SAMPLE_SECONDS = 0.1
REFRESH_SECONDS = 1.0
RUN_TIMEOUT_SECONDS = 900  # no engine run here takes a minute; a hung one fails


@dataclass(frozen=True)
class Measurement:
    wall_seconds: float
    peak_rss_bytes: int
    reported: dict  # the JSON line the engine printed last, if any
    stdout: str
    other_cores: float = 0.0  # CPU cores other processes kept busy during the run


def busy_cpu_seconds() -> float:
    """CPU seconds the whole machine spent on anything but idling and waiting."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class EngineFailed(RuntimeError):
    pass


def tree_members(process: psutil.Process) -> list[psutil.Process]:
    try:
        return [process, *process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def tree_rss(members: list[psutil.Process]) -> int:
    total = 0
    for member in members:
        try:
            total += member.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total


def run_measured(command: list[str], env: dict[str, str], cwd: Path, log_path: Path
                 ) -> Measurement:
    """Run ``command``; raise ``EngineFailed`` with its log tail if it fails."""
    peak = 0
    busy_before, ours_before = busy_cpu_seconds(), children_cpu_seconds()
    with log_path.open("w") as log:
        started = time.perf_counter()
        child = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE,
                                 stderr=log, text=True, start_new_session=True)
        watched = psutil.Process(child.pid)
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            members, listed = [watched], 0.0
            while not done.is_set():
                if time.perf_counter() - listed > REFRESH_SECONDS:
                    members, listed = tree_members(watched), time.perf_counter()
                peak = max(peak, tree_rss(members))
                done.wait(SAMPLE_SECONDS)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            stdout, _ = child.communicate(timeout=RUN_TIMEOUT_SECONDS)
            wall = time.perf_counter() - started
        except subprocess.TimeoutExpired as exc:
            os.killpg(child.pid, signal.SIGKILL)  # the whole tree: Ray's workers too
            child.communicate()
            raise EngineFailed(f"{' '.join(command[:4])} did not finish in "
                               f"{RUN_TIMEOUT_SECONDS} s; killed") from exc
        finally:
            done.set()
            sampler.join()
    busy = busy_cpu_seconds() - busy_before
    ours = children_cpu_seconds() - ours_before
    log_path.with_suffix(".out").write_text(stdout)
    if child.returncode != 0:
        tail = log_path.read_text()[-2000:]
        raise EngineFailed(f"{' '.join(command[:4])} exited {child.returncode}:\n{tail}")
    return Measurement(wall, peak, _last_json_line(stdout), stdout,
                       other_cores=max(0.0, busy - ours) / max(wall, 1e-9))


def _last_json_line(stdout: str) -> dict:
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return {}


def python() -> str:
    return sys.executable
