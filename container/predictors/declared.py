"""Refuse a model whose artifact contradicts what ``model.json`` declares about it.

A 3-class booster declared binary would otherwise be scored as if its first
probability were the positive class's, or fail deep inside the output writer with
an error that blames the input data. Checking what the artifact itself says (its
``ModelFacts``) when it is loaded names the model and the fix before any row is read.
"""

from __future__ import annotations

from container.contract import ModelMetadata
from container.errors import JobInputError
from container.predictors.base import ModelFacts


def check_declared(metadata: ModelMetadata, facts: ModelFacts, artifact: str) -> None:
    """JobInputError when the artifact's task, class count or feature count differs from
    the metadata's (facts that are ``None`` are not known, so not checked)."""
    where = f"model {metadata.name!r} (version {metadata.version})"
    fix = ("Fix the model's task in the registry (or the artifact) and retrain or "
           "re-import it.")
    if facts.task is not None and facts.task != metadata.task:
        raise JobInputError(
            f"{where} is declared task {metadata.task!r}, but its artifact is a "
            f"{facts.task} model ({artifact}). {fix}")
    classes = facts.n_classes or (len(facts.class_labels) if facts.class_labels else None)
    if (metadata.task == "multiclass" and classes is not None
            and classes != len(metadata.class_labels)):
        raise JobInputError(
            f"{where} declares {len(metadata.class_labels)} classes "
            f"{metadata.class_labels}, but its artifact predicts {classes} ({artifact}). "
            f"{fix}")
    if facts.n_features is not None and facts.n_features != len(metadata.features):
        raise JobInputError(
            f"{where} declares {len(metadata.features)} features, but its artifact takes "
            f"{facts.n_features} ({artifact}). Fix the model's features in the registry "
            "to the ones it was trained on.")
