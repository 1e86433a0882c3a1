"""The resources a scoring step works with, as one value."""

from __future__ import annotations

from dataclasses import dataclass

from resources.job_store import JobStore
from resources.processing import ProcessingBackend
from resources.storage import ObjectStorage


@dataclass(frozen=True)
class StepResources:
    """The three resources every scoring step uses."""

    storage: ObjectStorage
    job_store: JobStore
    processing: ProcessingBackend
