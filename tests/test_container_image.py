"""The container image installs every third-party module the container imports.

Docker cannot run here, so the build is not faked: the Dockerfile's structure
and the requirements list are checked against the container's real imports.
"""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONTAINER = ROOT / "container"


def imported_top_level_modules() -> set[str]:
    modules = set()
    for path in CONTAINER.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    return modules


def required_distributions() -> set[str]:
    lines = (CONTAINER / "requirements.txt").read_text().splitlines()
    names = [re.split(r"[<>=!~\[ ]", line.strip())[0] for line in lines
             if line.strip() and not line.startswith("#")]
    return {name.lower().replace("_", "-") for name in names}


def test_every_third_party_import_is_a_requirement():
    third_party = {m for m in imported_top_level_modules()
                   if m not in sys.stdlib_module_names and m != "container"}
    assert third_party, "found no imports: the scan is broken"
    distributions = packages_distributions()
    required = required_distributions()
    for module in sorted(third_party):
        owners = {d.lower().replace("_", "-") for d in distributions.get(module, [])}
        assert owners, f"no installed distribution provides {module!r}"
        assert owners & required, f"container imports {module!r} ({owners}) but " \
                                  "container/requirements.txt does not list it"


def test_requirements_are_not_orchestration_packages():
    assert not {d for d in required_distributions()
                if d.startswith(("dagster", "boto", "sagemaker"))}


def test_dockerfile_uses_exec_form_entrypoint_and_the_requirements():
    dockerfile = (CONTAINER / "Dockerfile").read_text()
    (entrypoint,) = re.findall(r"^ENTRYPOINT (.+)$", dockerfile, re.MULTILINE)
    assert entrypoint.startswith("["), "shell form would keep SIGTERM from reaching Python"
    assert '"container"' in entrypoint
    assert "pip install -r /opt/program/requirements.txt" in dockerfile
    assert "COPY container/requirements.txt" in dockerfile
    assert "dagster" not in dockerfile
