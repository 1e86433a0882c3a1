"""Does a model's registry entry still describe its current version?

A scoring job scores with the current version's ``model.json``, not with the
registry. After an entry is edited (its task declared ``binary``, a feature added, a
fill value changed) the current version was made from the old entry and would go
on scoring as the old entry said, with no word anywhere. So before any job the
scoring step compares every field that decides what a job computes or writes, and
a model whose entry has moved is not scored: the step names each field that
differs and says to materialize ``trained_model[<model>]`` again, which makes a
version from the entry as it is now.
"""

from __future__ import annotations

from batch_assets.registry import ModelSpec
from container.contract import NETWORK_FRAMEWORKS, ModelMetadata

_SHOWN = 6


def _columns(values: list[str] | tuple[str, ...]) -> str:
    shown = ", ".join(values[:_SHOWN])
    return f"[{shown}]" if len(values) <= _SHOWN else f"[{shown}, ... ({len(values)} in all)]"


def _differs(name: str, registry: list[str] | tuple[str, ...],
             version: list[str]) -> str | None:
    registry, version = list(registry), list(version)
    if registry == version:
        return None
    if sorted(registry) == sorted(version):
        return f"{name}: the same columns in another order (registry {_columns(registry)}, " \
               f"version {_columns(version)})"
    added = [c for c in registry if c not in version]
    removed = [c for c in version if c not in registry]
    parts = [f"registry adds {_columns(added)}" if added else "",
             f"registry lacks {_columns(removed)}" if removed else ""]
    return f"{name}: {'; '.join(p for p in parts if p)}"


def _network_output(framework: str, task: str, value: str) -> str:
    """What a network classifier's output means ("probability" when unset); nothing for
    the others."""
    if framework not in NETWORK_FRAMEWORKS or task == "regression":
        return ""
    return value or "probability"


def mismatches(spec: ModelSpec, metadata: ModelMetadata) -> list[str]:
    """Each field that decides scoring and differs between the entry and the version,
    as ``field: registry X, version Y``; empty when the version is the entry's."""
    found: list[str] = []

    def compare(name: str, registry: object, version: object) -> None:
        if registry != version:
            found.append(f"{name}: registry {registry!r}, version {version!r}")

    compare("framework", spec.framework, metadata.framework)
    compare("task", spec.task, metadata.task)
    for name, registry, version in (
            ("features", spec.features, metadata.features),
            ("key_columns", spec.key_columns, metadata.key_columns),
            ("categorical_features", spec.categorical_features,
             metadata.categorical_features),
            ("output.passthrough_columns", spec.passthrough_columns,
             metadata.passthrough_columns)):
        difference = _differs(name, registry, version)
        if difference:
            found.append(difference)
    if spec.class_labels:  # an imported multiclass model declares them (trained: data)
        compare("class_labels", list(spec.class_labels), metadata.class_labels)
    compare("output.network_output",
            _network_output(spec.framework, spec.task, spec.network_output),
            _network_output(metadata.framework, metadata.task, metadata.network_output))
    compare("output.nan_predictions", spec.nan_predictions or "fail",
            metadata.resolved_nan_predictions)
    compare("inputs.missing_values", spec.resolved_missing_values,
            metadata.resolved_missing_values)
    if spec.resolved_missing_values == "fill" == metadata.resolved_missing_values:
        compare("inputs.fill_statistic", spec.fill_statistic, metadata.fill_statistic)
        for feature, value in spec.fill_values.items():
            compare(f"inputs.fill_values.{feature}", value, metadata.fill_values.get(feature))
    return found


def mismatch_message(spec: ModelSpec, metadata: ModelMetadata,
                     differences: list[str]) -> str:
    return (f"the registry entry of model {spec.name!r} no longer matches its current "
            f"version {metadata.version} ({'; '.join(differences)}), so it was not scored: "
            "the version would score as the old entry said. Materialize "
            f"trained_model[{spec.name}] again to make a version from the entry as it is "
            "now (or restore the entry).")
