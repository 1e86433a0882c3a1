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

ROOT = Path(__file__).resolve().parents[2]
CONTAINER = ROOT / "container"


# distributions that install a module under another project's name
PROVIDES = {"xgboost-cpu": "xgboost", "tensorflow-cpu": "tensorflow-cpu"}
FRAMEWORK_EXTRAS = ("lightgbm", "onnx", "torch", "tensorflow")


def imports_of(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module.split(".")[0])
    return {m for m in modules if m not in sys.stdlib_module_names and m != "container"}


def required_distributions(name: str = "requirements.txt") -> set[str]:
    """Distributions a requirements file lists, following its ``-r`` includes."""
    found = set()
    for line in (CONTAINER / name).read_text().splitlines():
        line = line.strip()
        if line.startswith("-r "):
            found |= required_distributions(line[3:].strip())
        elif line and not line.startswith("#"):
            found.add(re.split(r"[<>=!~\[ ;]", line)[0].lower().replace("_", "-"))
    return {PROVIDES.get(d, d) for d in found}


def assert_provided(module: str, required: set[str], where: str) -> None:
    owners = {d.lower().replace("_", "-") for d in packages_distributions().get(module, [])}
    assert owners, f"no installed distribution provides {module!r}"
    assert owners & required, f"{where} imports {module!r} ({owners}) but its requirements " \
                              f"list does not"


def test_every_third_party_import_is_a_requirement():
    """The core list covers the container; each framework module is covered by the
    core list plus its own requirements-<framework>.txt (one image per family)."""
    core = required_distributions()
    checked = set()
    for path in sorted(CONTAINER.rglob("*.py")):
        extra = path.stem if path.parent.name == "frameworks" and \
            path.stem in FRAMEWORK_EXTRAS else None
        # ONNX Runtime sessions: used by the onnx framework and the networks' exports,
        # all of which need the onnx extra
        if path.relative_to(ROOT).as_posix() == "container/predictors/onnx_runtime.py":
            extra = "onnx"
        required = core | (required_distributions(f"requirements-{extra}.txt")
                           if extra else set())
        for module in sorted(imports_of(path)):
            assert_provided(module, required, str(path.relative_to(ROOT)))
            checked.add(module)
    assert {"pyarrow", "xgboost", "torch", "tensorflow", "onnxruntime", "lightgbm"} <= checked


def test_every_framework_row_has_its_module_requirements_and_extra():
    """A row of the framework table is a framework: its scoring module exists, and a
    framework outside the core has its requirements file and its pyproject extra."""
    import importlib.util
    import tomllib

    from container.framework_table import FRAMEWORK_TABLE

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    for row in FRAMEWORK_TABLE.values():
        assert importlib.util.find_spec(row.loader) is not None, row.loader
        if row.extra is not None:
            assert row.extra in FRAMEWORK_EXTRAS and row.extra in extras
            assert required_distributions(f"requirements-{row.extra}.txt")
            assert f"batch-inference[{row.extra}]" in row.install_hint


def test_requirements_are_not_orchestration_packages():
    for name in ("requirements.txt", *(f"requirements-{x}.txt" for x in FRAMEWORK_EXTRAS)):
        assert not {d for d in required_distributions(name)
                    if d.startswith(("dagster", "boto", "sagemaker"))}, name


def test_dockerfile_uses_exec_form_entrypoint_and_the_requirements():
    dockerfile = (CONTAINER / "Dockerfile").read_text()
    (entrypoint,) = re.findall(r"^ENTRYPOINT (.+)$", dockerfile, re.MULTILINE)
    assert entrypoint.startswith("["), "shell form would keep SIGTERM from reaching Python"
    assert '"container"' in entrypoint
    assert "pip install -r /opt/program/requirements.txt" in dockerfile
    assert "COPY container/requirements.txt" in dockerfile
    assert "dagster" not in dockerfile
    assert "COPY container/requirements-*.txt" in dockerfile
    assert 'requirements-$name.txt' in dockerfile
