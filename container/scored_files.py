"""What the scoring pipeline works on: input files as opened, and the job's models.

Kept apart from ``container.scoring`` (the pipeline) and ``container.units`` (units
of work), which both use them, so neither imports the other's module for its types.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from container.contract import ModelMetadata
from container.model_inputs import ModelInputs
from container.predictors.base import FrameworkModel

log = logging.getLogger("container.scoring")


@dataclass(frozen=True)
class InputFile:
    source: Path
    relative: str  # path relative to the data input folder, e.g. "part-00001.parquet"


@dataclass(frozen=True)
class OpenedFile:
    """What the footer says, read once before scoring."""

    file: InputFile
    rows: int
    row_groups: int
    input_schema: pa.Schema
    metadata: pq.FileMetaData  # the footer, reused by the readers (not read again)


@dataclass
class ScoredModel:
    """One model of a job: its predictor, which files it scores and where its outputs
    go. ``failure`` is set when the model fails (load, schema, predictions): the job
    goes on with the other models and fails at the end, naming this one."""

    metadata: ModelMetadata
    model: FrameworkModel | None
    output_root: Path
    manifest_fields: dict
    files: frozenset[str] | None = None  # relative inputs to score; None: every file
    failure: BaseException | None = None
    # the model's feature columns as its predictors take them (types, missing values)
    inputs: ModelInputs = field(init=False)

    def __post_init__(self) -> None:
        precision = self.model.feature_precision if self.model is not None else np.float32
        self.inputs = ModelInputs(self.metadata, precision)

    @property
    def name(self) -> str:
        return self.metadata.name

    def scores(self, relative: str) -> bool:
        return self.failure is None and (self.files is None or relative in self.files)

    def fail(self, exc: BaseException, where: str) -> None:
        if self.failure is None:
            log.error("model %s failed %s: %s; the job's other models go on", self.name,
                      where, exc)
            self.failure = exc
