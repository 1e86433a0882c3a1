"""LightGBM boosters (text model files), scored by LightGBM or, where it agrees, oneDAL.

Framework path: ``Booster.predict(matrix, num_threads=threads)`` on a float64 matrix.
LightGBM compares features with its thresholds in float64, so it gets the columns'
own precision (a float32 copy would send a float64 value that lies within float32
rounding of a threshold the other way). Its output already has the engine's shape:
P(class 1) for ``binary``, (n, k) softmax probabilities for ``multiclass`` (classes
0..k-1, which ``ModelMetadata.class_labels`` must list in that order: LightGBM
stores no labels), the value for the regression objectives.

Fast path (``predictor = "auto"``, x86_64 with scikit-learn-intelex): the booster
converted by daal4py (``daal4py.mb.convert_model``). Measured here on a 200-tree,
255-leaf, 40-feature binary model, 262,144 rows, 2 threads (a shared machine, so
ranges): oneDAL's predict 0.23-0.68 s, LightGBM 4.7's 5.8-11.9 s; the whole fast
path, with the threshold guard below (0.6-1.1 s of it), 2.3-3.2 s, so 3-4x. It is
used only where the conversion is exact, and checked against LightGBM on the job's
first batch:

* The converter accepts boosters it then scores wrongly, so these are refused before
  converting (measured differences from LightGBM in brackets): objectives with a
  link other than the identity, the softmax or the plain sigmoid (``poisson``
  [2.8], ``cross_entropy`` [1.5], ``binary`` with ``sigmoid`` != 1 [0.14],
  ``regression`` with ``reg_sqrt``), ``zero_as_missing`` splits [0.098] and
  categorical splits [0.61]. Random forests, linear trees and ``multiclassova`` it
  refuses itself.
* oneDAL keeps thresholds in float32, so a row whose value lies within a few float32
  units of a split threshold can take the other branch (one row in 262,144 random
  rows above, off by 4e-5; values exactly at thresholds, off by 0.18). Every such row
  (any feature within ``THRESHOLD_ULPS`` float32 units of one of its thresholds:
  254 of those 262,144 rows) is scored again by LightGBM, so every row of the
  fast path is LightGBM's tree walk; what remains is oneDAL summing leaves in float32
  (within 3e-7 above), inside the engine's 1e-6 scaled by values above 1.

A LightGBM text file cut short makes LightGBM 4.7 crash the process (segmentation
fault) instead of raising, so the file's structure (header, ``tree_sizes``, ``end of
trees``) is checked before LightGBM reads it.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from container.contract import ModelMetadata
from container.errors import JobInputError
from container.predictors.base import ModelFacts, PathsUsed
from container.predictors.declared import check_declared
from container.predictors.features import feature_columns, float64_matrix
from container.predictors.two_path import TwoPathModel

log = logging.getLogger("container.frameworks.lightgbm")

THRESHOLD_ULPS = 4  # rows this close to a threshold (in float32 units) go to LightGBM
# objective (first word of the model file's objective line) -> task
_TASKS = {"binary": "binary", "multiclass": "multiclass", "multiclassova": "multiclass"}
_IDENTITY_REGRESSION = ("regression", "regression_l1", "huber", "fair", "quantile", "mape")
_REGRESSION = (*_IDENTITY_REGRESSION, "poisson", "gamma", "tweedie")
# decision_type bits (LightGBM's tree.h)
_CATEGORICAL_BIT = 1
_MISSING_TYPE_SHIFT, _MISSING_NONE, _MISSING_ZERO = 2, 0, 1


@dataclass
class ModelText:
    """What the model file says that LightGBM's Python API does not expose."""

    header: dict[str, str]
    flags: set[str]  # header lines without a value (average_output)
    # feature index -> thresholds of its numerical splits
    thresholds: dict[int, list[float]] = field(default_factory=dict)
    categorical_splits: int = 0
    zero_as_missing_splits: int = 0
    linear_trees: int = 0
    # features split with missing type None (trained without missing values, or with
    # use_missing=false): LightGBM scores a NaN there as 0.0, oneDAL would send it down
    # the split's default branch (measured: off by up to 0.99)
    nan_as_zero: set[int] = field(default_factory=set)

    @property
    def objective(self) -> list[str]:
        return self.header.get("objective", "").split()


def _bad_file(artifact: Path, problem: str) -> JobInputError:
    return JobInputError(
        f"model artifact {artifact} is not a readable LightGBM model: {problem}. Save the "
        "booster with Booster.save_model (a text file) and re-import it.")


def read_model_text(artifact: Path) -> ModelText:
    """Parse the model file's header and split lines, checking the structure LightGBM
    relies on: it jumps to each tree by ``tree_sizes`` without checking bounds."""
    try:
        raw = artifact.read_bytes()
        text = raw.decode("ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise _bad_file(artifact, f"{type(exc).__name__}: {exc}") from exc
    head = text.partition("\n\n")[0]
    lines = head.split("\n")
    if lines[0] != "tree" or not any(line.startswith("objective=") for line in lines):
        raise _bad_file(artifact, "it does not start with a LightGBM model header")
    header = dict(line.split("=", 1) for line in lines[1:] if "=" in line)
    flags = {line for line in lines[1:] if line and "=" not in line}
    first, end = text.find("Tree=0"), text.find("end of trees")
    if end < 0 or (first >= 0 and end < first):
        raise _bad_file(artifact, "it is cut short (no 'end of trees' line)")
    if "tree_sizes" in header and first >= 0:
        sizes = [int(size) for size in header["tree_sizes"].split()]
        offsets = np.cumsum([0, *sizes[:-1]]) + first
        if sum(sizes) != end - first or any(raw[o:o + 5] != b"Tree=" for o in offsets):
            raise _bad_file(artifact, "its trees do not match the tree_sizes in its header "
                                      "(the file was changed or cut short)")
    model = ModelText(header, flags)
    _read_splits(text[max(first, 0):end], model)
    return model


def _read_splits(trees: str, model: ModelText) -> None:
    features: list[int] = []
    thresholds: list[float] = []
    for line in trees.split("\n"):
        key, _, value = line.partition("=")
        if key == "split_feature":
            features = [int(v) for v in value.split()]
        elif key == "threshold":
            thresholds = [float(v) for v in value.split()]
        elif key == "decision_type":  # after split_feature and threshold in each tree
            kinds = np.array(value.split(), dtype=np.int64)
            categorical = (kinds & _CATEGORICAL_BIT) != 0
            model.categorical_splits += int(categorical.sum())
            missing = (kinds >> _MISSING_TYPE_SHIFT) & 3
            model.zero_as_missing_splits += int((missing == _MISSING_ZERO).sum())
            for feature, threshold, is_categorical, kind in zip(
                    features, thresholds, categorical, missing, strict=True):
                if not is_categorical:  # a categorical one indexes the category sets
                    model.thresholds.setdefault(feature, []).append(threshold)
                    if kind == _MISSING_NONE:
                        model.nan_as_zero.add(feature)
        elif key == "is_linear" and value.strip() == "1":
            model.linear_trees += 1


def task_of_objective(objective: list[str]) -> str | None:
    """The task a LightGBM objective trains for; ``None`` for those that do not say
    (``cross_entropy`` is a probability, so binary or regression; ranking; custom)."""
    name = objective[0] if objective else ""
    if name in _REGRESSION:
        return "regression"
    return _TASKS.get(name)


def onedal_refusal(model: ModelText) -> str | None:
    """Why oneDAL would not score this booster as LightGBM does, or ``None``."""
    name, options = (model.objective[0], model.objective[1:]) if model.objective else ("", [])
    if name == "binary" and options != ["sigmoid:1"]:
        return f"binary objective with {' '.join(options)} (oneDAL applies sigmoid:1)"
    if name == "regression" and "sqrt" in options:
        return "regression with reg_sqrt (oneDAL does not square the result)"
    if name not in ("binary", "multiclass", *_IDENTITY_REGRESSION):
        return f"objective {name or 'custom'} (oneDAL has no such link function)"
    if "average_output" in model.flags:
        return "a random forest (average_output)"
    if model.linear_trees:
        return f"{model.linear_trees} linear trees"
    if model.categorical_splits:
        return f"{model.categorical_splits} categorical splits"
    if model.zero_as_missing_splits:
        return f"{model.zero_as_missing_splits} zero-as-missing splits"
    return None


def threshold_windows(thresholds: dict[int, list[float]]
                      ) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per feature, the float32 intervals of ``THRESHOLD_ULPS`` units around each of its
    thresholds, as (upper bounds, lower bounds + [inf]) sorted for ``searchsorted``."""
    windows = {}
    for feature, values in thresholds.items():
        if not values:
            continue
        centre = np.unique(np.asarray(values, np.float64))
        ulp = np.spacing(np.abs(centre).astype(np.float32)).astype(np.float64)
        upper = (centre + THRESHOLD_ULPS * ulp).astype(np.float32)
        lower = (centre - THRESHOLD_ULPS * ulp).astype(np.float32)
        windows[feature] = (upper, np.append(lower, np.float32(np.inf)))
    return windows


class OneDalBooster:
    """The converted booster, with rows near a split threshold scored by LightGBM."""

    def __init__(self, model: Any, task: str, windows: dict[int, tuple[np.ndarray, np.ndarray]],
                 framework: LightGBMModel, nan_as_zero: set[int] | None = None) -> None:
        self.model = model
        self.task = task
        self.windows = windows
        self.framework = framework
        self.nan_as_zero = sorted(nan_as_zero or ())

    def prepare(self, batch: pa.RecordBatch, features: list[str]) -> tuple:
        """Float32 columns for the threshold guard; oneDAL's matrix in float32, or in
        float64 for regression: a regression value is a sum of leaves that oneDAL adds
        in the input's precision, and in float32 a near-zero sum of large leaves was
        off from LightGBM's float64 sum by up to 4.5e-6 (measured; 9.7e-7 on a
        200-tree model here, 9e-9 in float64, for about 30% more oneDAL time).
        Probabilities pass through a sigmoid or softmax, which shrinks that error."""
        columns = feature_columns(batch, features, np.float32)
        matrix = (float64_matrix(batch, features) if self.task == "regression" else
                  np.column_stack(columns) if columns
                  else np.empty((batch.num_rows, 0), np.float32))
        for feature in self.nan_as_zero:  # as LightGBM scores NaN there (ModelText)
            gaps = np.isnan(columns[feature])
            if gaps.any():
                columns[feature] = np.where(gaps, np.float32(0.0), columns[feature])
                matrix[gaps, feature] = 0.0
        return columns, matrix, batch

    def near_thresholds(self, columns: list[np.ndarray]) -> np.ndarray:
        """Rows with a feature within THRESHOLD_ULPS float32 units of a threshold."""
        near = np.zeros(len(columns[0]) if columns else 0, dtype=bool)
        for feature, (upper, lower) in self.windows.items():
            values = columns[feature]
            near |= values >= lower[np.searchsorted(upper, values)]
        return near

    def predict(self, prepared: tuple) -> np.ndarray:
        return self.predict_counted(prepared)[0]

    def predict_counted(self, prepared: tuple) -> tuple[np.ndarray, np.ndarray]:
        """The predictions, and the rows (near a threshold) LightGBM scored."""
        columns, matrix, batch = prepared
        if self.task == "regression":
            values = np.asarray(self.model.predict(matrix), dtype=np.float64)
        else:
            values = np.asarray(self.model.predict_proba(matrix), dtype=np.float64)
            if self.task == "binary":
                values = values[:, 1]
        rows = np.flatnonzero(self.near_thresholds(columns))
        if len(rows):
            exact = self.framework._framework_prepare(batch.take(pa.array(rows)))
            values[rows] = self.framework._framework_predict(exact)
        return values, rows


class LightGBMModel(TwoPathModel):
    framework_name = "lightgbm predict"
    fast_name = "oneDAL"
    feature_precision = np.float64  # LightGBM compares with its thresholds in float64
    near_threshold_name = "lightgbm predict (rows near a split threshold)"

    def __init__(self, metadata: ModelMetadata, bundle_dir: Path, threads: int,
                 predictor: str) -> None:
        import lightgbm as lgb

        self.metadata = metadata
        self.artifact = bundle_dir / metadata.artifact
        self.threads = threads
        self.text = read_model_text(self.artifact)
        try:
            self.booster = lgb.Booster(model_file=str(self.artifact))
        except lgb.basic.LightGBMError as exc:
            raise _bad_file(self.artifact, str(exc)) from exc
        check_declared(metadata, self.facts(),
                       f"LightGBM objective {' '.join(self.text.objective)}")
        self.fast_refusal: str | None = None
        if predictor == "auto":
            self._fast = self._onedal()

    def _onedal(self) -> OneDalBooster | None:
        import importlib.util

        if importlib.util.find_spec("daal4py") is None:
            self.fast_refusal = "oneDAL not installed (scikit-learn-intelex, x86_64 only)"
            return None
        refusal = onedal_refusal(self.text)
        if refusal is None:
            import daal4py

            daal4py.daalinit(self.threads)  # oneDAL's pool: never more than we were given
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # overflow casting inf thresholds
                    model = daal4py.mb.convert_model(self.booster)
            except Exception as exc:  # daal4py raises TypeError/ValueError/bare Exception
                refusal = f"converting failed ({type(exc).__name__}: {exc})"
        if refusal is not None:
            self.fast_refusal = f"oneDAL not used: {refusal}"
            log.info("%s: %s", self.artifact.name, self.fast_refusal)
            return None
        task = task_of_objective(self.text.objective) or self.metadata.task
        return OneDalBooster(model, task, threshold_windows(self.text.thresholds), self,
                             self.text.nan_as_zero)

    def facts(self) -> ModelFacts:
        """Feature names (unless LightGBM made them up: ``Column_<i>``), the feature
        count, the objective's task and the class count (no class labels)."""
        names = self.booster.feature_name()
        if names == [f"Column_{i}" for i in range(len(names))]:
            names = None
        task = task_of_objective(self.text.objective)
        classes = int(self.text.header.get("num_class", "1"))
        return ModelFacts(feature_names=names, n_features=self.booster.num_feature(),
                          task=task, n_classes=classes if classes > 1 else (
                              2 if task == "binary" else None))

    def verify_fast_path(self, batch: pa.RecordBatch) -> str:
        if self._fast is None and self.fast_refusal:
            return self.fast_refusal
        return super().verify_fast_path(batch)

    def predict_recorded(self, batch: pa.RecordBatch) -> tuple[np.ndarray, PathsUsed]:
        """oneDAL's rows and the rows near a threshold that LightGBM scored, apart."""
        if not isinstance(self._fast, OneDalBooster):
            return super().predict_recorded(batch)
        values, exact = self._fast.predict_counted(
            self._fast.prepare(batch, self.metadata.features))
        return values, PathsUsed(self.fast_name, {self.near_threshold_name: exact})

    def _framework_prepare(self, batch: pa.RecordBatch) -> np.ndarray:
        return float64_matrix(batch, self.metadata.features)

    def _framework_predict(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster.predict(features, num_threads=self.threads),
                          dtype=np.float64)


def load(metadata: ModelMetadata, bundle_dir: Path, threads: int,
         predictor: str) -> LightGBMModel:
    return LightGBMModel(metadata, bundle_dir, threads, predictor)
