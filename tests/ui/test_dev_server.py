"""``make dev`` stops cleanly: Ctrl-C or SIGTERM ends every dagster process within seconds.

The slow tests run the real ``dagster dev`` (through ``make dev`` and through the launcher
alone) on a free port of 127.0.0.1, wait until the webserver answers, signal it and check
that nothing it started survives. Every process they start carries a unique environment
variable, so survivors are found whatever process group or parent they end up with.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"
TOKEN_VARIABLE = "DEV_SERVER_TEST_TOKEN"
STARTUP_SECONDS = 120
EXIT_SECONDS = 30


def tagged_processes(token: str) -> dict[int, int]:
    """Live (non-zombie) processes whose environment carries ``token``: pid -> pgid."""
    marker = f"{TOKEN_VARIABLE}={token}".encode()
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if marker in environ and fields[0] != "Z":
            found[int(entry.name)] = int(fields[2])
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def token() -> Iterator[str]:
    """A tag for every process the test starts; whatever is left is SIGKILLed at the end."""
    value = uuid.uuid4().hex
    yield value
    for pid in tagged_processes(value):
        os.kill(pid, signal.SIGKILL)


def start(command: list[str], cwd: Path, token: str, log: Path,
          ignore_sigint: bool = False) -> subprocess.Popen:
    """Start ``command`` in a new session, as a terminal runs a foreground job (its process
    group gets Ctrl-C). ``ignore_sigint``: started as ``make dev &`` from a script is."""
    env = {**os.environ, TOKEN_VARIABLE: token}

    def dispositions() -> None:
        """Set, not inherit, what the case assumes: a test run started as a background
        job (``cmd &`` in a script, as CI may) inherits SIGINT, SIGQUIT and SIGHUP
        ignored, and a terminal's foreground job would have them at their defaults."""
        signal.signal(signal.SIGINT, signal.SIG_IGN if ignore_sigint else signal.SIG_DFL)
        for other in (signal.SIGTERM, signal.SIGQUIT, signal.SIGHUP):
            signal.signal(other, signal.SIG_DFL)

    with open(log, "wb") as out:
        return subprocess.Popen(
            command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=dispositions,
        )


def wait_exit(process: subprocess.Popen, timeout: float, log: Path) -> int:
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{process.args[0]} still running {timeout} s after the signal; "
                             f"log:\n{log.read_text()[-3000:]}") from None


def launcher(*command: str, grace: float = 10.0) -> list[str]:
    return [sys.executable, "-m", "batch_assets.dev.dev_server", "--grace-seconds", str(grace),
            "--", *command]


# --- the launcher on stand-in commands (fast) -------------------------------------------

STUBBORN = """
import signal, subprocess, sys, time
for s in (signal.SIGINT, signal.SIGTERM):
    signal.signal(s, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print("ready", flush=True)
time.sleep(600)
"""


def wait_for_line(log: Path, text: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text():
        assert time.monotonic() < deadline, f"{text!r} never appeared in {log.read_text()!r}"
        time.sleep(0.05)


def test_a_group_that_ignores_sigterm_is_killed_after_the_grace_period(tmp_path, token):
    log = tmp_path / "out.log"
    process = start(launcher(sys.executable, "-c", STUBBORN, grace=1), tmp_path, token, log)
    wait_for_line(log, "ready")
    pids = tagged_processes(token)
    assert len(pids) == 3  # launcher, stubborn command, its child
    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)
    assert wait_exit(process, EXIT_SECONDS, log) == -signal.SIGTERM
    assert time.monotonic() - sent < 1 + 5
    assert tagged_processes(token) == {}
    output = log.read_text()
    assert "dev_server: SIGTERM received: stopping" in output
    assert "did not stop within 1 s; sending SIGKILL to the group" in output


def test_a_second_ctrl_c_kills_at_once(tmp_path, token):
    log = tmp_path / "out.log"
    process = start(launcher(sys.executable, "-c", STUBBORN, grace=600), tmp_path, token, log)
    wait_for_line(log, "ready")
    sent = time.monotonic()
    os.killpg(process.pid, signal.SIGINT)
    wait_for_line(log, "SIGINT received: stopping")
    os.killpg(process.pid, signal.SIGINT)
    assert wait_exit(process, EXIT_SECONDS, log) == -signal.SIGINT
    assert time.monotonic() - sent < 10
    assert tagged_processes(token) == {}
    assert "SIGINT received again: killing process group" in log.read_text()


def test_exit_code_of_a_command_that_ends_by_itself_is_kept(tmp_path, token):
    log = tmp_path / "out.log"
    process = start(launcher(sys.executable, "-c", "raise SystemExit(3)"), tmp_path, token, log)
    assert wait_exit(process, EXIT_SECONDS, log) == 3
    assert tagged_processes(token) == {}


def test_a_leftover_of_a_command_that_exited_is_killed(tmp_path, token):
    """As dagster dev's code servers outlive it until their heartbeat expires."""
    leaves_a_child = ("import subprocess, sys; subprocess.Popen([sys.executable, '-c', "
                      "'import time; time.sleep(600)']); raise SystemExit(4)")
    log = tmp_path / "out.log"
    process = start(launcher(sys.executable, "-c", leaves_a_child, grace=1), tmp_path, token,
                    log)
    assert wait_exit(process, EXIT_SECONDS, log) == 4
    assert tagged_processes(token) == {}
    assert "were still running 1 s after" in log.read_text()


def test_missing_command_is_named(tmp_path, token):
    log = tmp_path / "out.log"
    process = start(launcher(str(tmp_path / "no-dagster")), tmp_path, token, log)
    assert wait_exit(process, EXIT_SECONDS, log) == 127
    assert f"cannot start '{tmp_path / 'no-dagster'}'" in log.read_text()


# --- the real dagster dev (slow) --------------------------------------------------------


@pytest.fixture
def dev_dir(tmp_path) -> Path:
    """A working folder like the repository's for dagster dev: workspace.yaml loading this
    checkout's definitions, and a DAGSTER_HOME; the definitions' .data lands here too."""
    (tmp_path / "workspace.yaml").write_text(
        "load_from:\n  - python_module:\n      module_name: batch_assets.definitions\n"
        f"      working_directory: {REPO}\n")
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "batch_assets" / "local_instance.yaml", home / "dagster.yaml")
    return tmp_path


def wait_until_serving(process: subprocess.Popen, port: int, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        assert process.poll() is None, f"exited with {process.returncode}:\n{log.read_text()}"
        assert time.monotonic() < deadline, f"no answer on port {port}:\n{log.read_text()}"
        time.sleep(1)


def stop_and_check(process: subprocess.Popen, how: str, token: str, log: Path) -> None:
    """Send the signal, then: exits within EXIT_SECONDS, of that signal, leaving nothing."""
    running = tagged_processes(token)
    assert len(running) >= 5, running  # this, dagster dev, its webserver, daemon, code server
    if how == "SIGTERM":
        process.send_signal(signal.SIGTERM)  # e.g. `kill <pid of make>`
        expected = -signal.SIGTERM
    else:
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C: the terminal's foreground group
        expected = -signal.SIGINT
    assert wait_exit(process, EXIT_SECONDS, log) == expected
    survivors = tagged_processes(token)
    assert survivors == {}, f"left behind: {survivors}\n{log.read_text()[-3000:]}"
    assert f"dev_server: {how} received: stopping" in log.read_text()


# SIGTERM with SIGINT ignored is `make dev &` from a script: dagster dev alone then ignores
# SIGTERM too, and make waited for it forever.
CASES = [("SIGTERM", True), ("SIGINT", False)]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("make") is None or not (VENV_BIN / "dagster").exists(),
                    reason="needs make and the repository's .venv (make setup)")
@pytest.mark.parametrize(("how", "ignore_sigint"), CASES)
def test_make_dev_stops_on_signal(dev_dir, token, how, ignore_sigint):
    port = free_port()
    log = dev_dir / "make-dev.log"
    command = ["make", "-f", str(REPO / "Makefile"), "-o", ".venv/.installed",
               f"BIN={VENV_BIN}", f"DAGSTER_HOME={dev_dir / 'dagster_home'}",
               f"DEV_ARGS=-p {port} -h 127.0.0.1", "dev"]
    process = start(command, dev_dir, token, log, ignore_sigint=ignore_sigint)
    wait_until_serving(process, port, log)
    stop_and_check(process, how, token, log)


@pytest.mark.slow
@pytest.mark.parametrize(("how", "ignore_sigint"), CASES)
def test_launcher_stops_dagster_dev_on_signal(dev_dir, token, how, ignore_sigint,
                                              monkeypatch):
    port = free_port()
    log = dev_dir / "dev-server.log"
    monkeypatch.setenv("DAGSTER_HOME", str(dev_dir / "dagster_home"))
    command = launcher(sys.executable, "-m", "dagster", "dev", "-w", "workspace.yaml",
                       "-p", str(port), "-h", "127.0.0.1")
    process = start(command, dev_dir, token, log, ignore_sigint=ignore_sigint)
    wait_until_serving(process, port, log)
    stop_and_check(process, how, token, log)
