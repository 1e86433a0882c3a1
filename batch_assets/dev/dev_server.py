"""``make dev``'s launcher: run ``dagster dev`` so that Ctrl-C or SIGTERM stops all of it.

``python -m batch_assets.dev.dev_server [--grace-seconds S] -- dagster dev -w workspace.yaml ...``

Why not run ``dagster dev`` directly from make: started with SIGINT ignored (as any
background job of a non-interactive shell is, e.g. ``make dev &`` from a script),
``dagster dev`` copies that disposition to SIGTERM, so the SIGTERM make forwards is
ignored and make waits forever. And ``dagster dev`` itself gives its webserver and daemon
up to 60 s each, while its code servers outlive it until their heartbeat expires.

So the launcher starts the command in its own process group (its webserver, daemon and
code servers join that group), forwards SIGINT / SIGTERM / SIGHUP to the whole group,
waits up to a grace period for every process of the group to exit, then SIGKILLs the
group; a second signal kills at once. It then dies of the signal it received, as the
command would have. Run it with exec semantics (the Makefile's recipe is one ``exec``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_GRACE_SECONDS = 10.0
KILL_WAIT_SECONDS = 3.0
POLL_SECONDS = 0.1
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def say(message: str) -> None:
    print(f"dev_server: {message}", file=sys.stderr, flush=True)


def group_members(group: int) -> list[int]:
    """Live (non-zombie) processes of process group ``group``."""
    proc = Path("/proc")
    if not proc.is_dir():  # not Linux: a group of zombies only counts as alive here
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return []
        except PermissionError:
            pass
        return [group]
    members = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # exited meanwhile
        if int(fields[2]) == group and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def signal_group(group: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signum)


def run(command: list[str], grace_seconds: float) -> int:
    """Run ``command`` until it and every process of its group exit; returns its exit code,
    or the number of the signal that stopped it, negated."""
    received: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        received.append(signum)

    # Handlers (not SIG_IGN) are reset to the default in the child, so dagster dev gets a
    # working SIGINT (and with it SIGTERM) even when we were started with SIGINT ignored.
    for signum in FORWARDED:
        signal.signal(signum, on_signal)
    try:
        process = subprocess.Popen(command, process_group=0, stdin=subprocess.DEVNULL)
    except OSError as exc:
        say(f"cannot start {command[0]!r}: {exc}; run `make setup` to install the venv")
        return 127
    group = process.pid
    handled = 0
    deadline: float | None = None
    stopping_since = 0.0
    overdue = ""  # why the group is killed once the deadline passes
    while True:
        for index, signum in enumerate(received[handled:], start=handled):
            name = signal.Signals(signum).name
            if index == 0:
                say(f"{name} received: stopping {command[0]} (process group {group}); it is "
                    f"killed if still running in {grace_seconds:g} s (signal again to kill now)")
                signal_group(group, signum)
                stopping_since = time.monotonic()
                deadline = stopping_since + grace_seconds
                overdue = f"did not stop within {grace_seconds:g} s"
            else:
                say(f"{name} received again: killing process group {group} now")
                deadline = time.monotonic()
                overdue = f"were still running at the second {name}"
        handled = len(received)
        exited = process.poll() is not None
        if exited and deadline is None:
            # it stopped by itself; its code servers may linger until their heartbeat expires
            deadline = time.monotonic() + grace_seconds
            overdue = f"were still running {grace_seconds:g} s after {command[0]} exited"
        if exited and not group_members(group):
            break
        if deadline is not None and time.monotonic() >= deadline:
            kill_group(group, overdue)
            break
        time.sleep(POLL_SECONDS)
    code = process.wait()
    if received:
        say(f"{command[0]} stopped ({time.monotonic() - stopping_since:.1f} s after "
            f"{signal.Signals(received[0]).name})")
        return -received[0]
    return code


def kill_group(group: int, overdue: str) -> None:
    members = group_members(group)
    say(f"process(es) {', '.join(map(str, members))} of group {group} {overdue}; "
        "sending SIGKILL to the group")
    signal_group(group, signal.SIGKILL)
    deadline = time.monotonic() + KILL_WAIT_SECONDS
    while group_members(group) and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
    survivors = group_members(group)
    if survivors:
        say(f"process(es) {', '.join(map(str, survivors))} of group {group} survived SIGKILL "
            "(stuck in the kernel?); check them with `ps -o pid,stat,args -g "
            f"{group}`")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m batch_assets.dev.dev_server",
        description="Run a command (dagster dev) in its own process group; Ctrl-C or SIGTERM "
                    "stops the whole group, killing it after a grace period.")
    parser.add_argument("--grace-seconds", type=float, default=DEFAULT_GRACE_SECONDS,
                        help="seconds the group gets to exit after a signal before SIGKILL "
                             "(default %(default)s)")
    parser.add_argument("command", nargs=argparse.REMAINDER,
                        help="the command, after `--`, e.g. -- .venv/bin/dagster dev")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given; e.g. python -m batch_assets.dev.dev_server -- "
                     ".venv/bin/dagster dev -w workspace.yaml")
    code = run(command, args.grace_seconds)
    if code < 0:  # die of the same signal, so make and shells see an interrupted command
        sys.stdout.flush()
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
        return 128 - code
    return code


if __name__ == "__main__":
    sys.exit(main())
