"""Model registries for tests, built as data: read the TOML, change values, write it.

Editing the registry's text with ``str.replace`` silently does nothing once the
shipped file is worded differently; a change made here to a model or setting that
does not exist fails at once, naming it.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tomli_w

from batch_assets.registry import DEFAULT_REGISTRY_PATH

RegistryData = dict[str, Any]


def read_registry(path: Path = DEFAULT_REGISTRY_PATH) -> RegistryData:
    return tomllib.loads(Path(path).read_text())


def write_registry(data: RegistryData, path: Path) -> Path:
    Path(path).write_text(tomli_w.dumps(data))
    return Path(path)


def edit_registry(path: Path, edit: Callable[[RegistryData], None],
                  source: Path | None = None) -> Path:
    """Apply ``edit`` to the registry at ``source`` (default: ``path`` itself) and write
    the result to ``path``."""
    data = read_registry(source or path)
    edit(data)
    return write_registry(data, path)


def model(data: RegistryData, name: str) -> dict[str, Any]:
    """The entry of model ``name``; KeyError naming the models there are."""
    for entry in data["models"]:
        if entry["name"] == name:
            return entry
    raise KeyError(f"no model {name!r} in the registry: "
                   f"{[entry['name'] for entry in data['models']]}")


def setting(data: RegistryData, key: str, value: Any) -> None:
    """Set a top-level setting that the registry already has (a misspelt key fails)."""
    if key not in data:
        raise KeyError(f"the registry has no setting {key!r}: {sorted(data)}")
    data[key] = value


def entries(toml_text: str) -> list[dict[str, Any]]:
    """The ``[[models]]`` entries a TOML fragment declares, as data."""
    return tomllib.loads(toml_text)["models"]


def add_models(path: Path, toml_text: str, replacing: str | None = None) -> Path:
    """Append the fragment's models to the registry at ``path`` (first removing model
    ``replacing``, which must exist)."""
    def edit(data: RegistryData) -> None:
        if replacing is not None:
            data["models"].remove(model(data, replacing))
        data["models"].extend(entries(toml_text))
    return edit_registry(path, edit)
