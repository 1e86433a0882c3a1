"""CI runs the README's test command; the README's commands are real Make targets."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci/run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    assert re.search(r"^make test$", ci, re.MULTILINE)


def test_make_targets_exist_and_set_up_the_environment():
    for target in ("demo", "test", "dev"):
        dry_run = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True,
                                 text=True, check=True).stdout
        assert dry_run, target
    assert "pytest" in subprocess.run(["make", "-n", "-W", "pyproject.toml", "test"], cwd=ROOT,
                                      capture_output=True, text=True).stdout
    setup = subprocess.run(["make", "-n", "-W", "pyproject.toml", "setup"], cwd=ROOT,
                           capture_output=True, text=True).stdout
    assert "-m venv" in setup and "pip install" in setup


def test_slow_suite_installs_debian_chromium_when_missing():
    """The UI test's browser: `make test-slow` installs Debian's chromium first when it is
    missing, and nothing when it is there."""
    missing = subprocess.run(["make", "-n", "test-slow", "CHROMIUM=/nonexistent/chromium"],
                             cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "apt-get install -y -q chromium" in missing
    assert missing.index("apt-get install") < missing.index("pytest -m slow")
    present = subprocess.run(["make", "-n", "browser", "CHROMIUM=/bin/sh"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
    assert "apt-get" not in present
