"""ONNX models, scored by ONNX Runtime on the CPU.

Any graph with one input of shape (rows, features), float32 or float64, is scored:
scikit-learn models exported by skl2onnx, PyTorch modules by ``torch.onnx.export``,
Keras/TensorFlow models by tf2onnx. ONNX Runtime *is* the framework here, so there
is no second path to verify (``predictor_name`` is always ``ONNX Runtime``).

Which output is the prediction depends on the task ``model.json`` declares, checked
against what the graph allows when the model is loaded:

* classifiers exported by skl2onnx have a label output and a probability output
  (n, k); the probabilities are the prediction (binary: column 1, the positive
  class). With ``zipmap=True`` (skl2onnx's default) the probabilities are a list of
  one {label: probability} dict per row, which would cost a Python loop per row, so
  the ZipMap node is cut off when the model is loaded and its input, the same
  probabilities as an (n, k) tensor, becomes the output; the class labels are read
  from it (or from the classifier node) and the columns are put in the order of
  ``ModelMetadata.class_labels``.
* a network with one float output: (n, 1) or (n,) is P(positive) for a binary model
  or the value for a regression model; (n, k) are class probabilities. Logits are
  accepted when the model declares ``output = "logit"``
  (``container.predictors.network_outputs``).

Sessions and their threads: ``container.predictors.onnx_runtime``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from container.contract import ModelMetadata
from container.errors import JobInputError
from container.predictors.base import ModelFacts
from container.predictors.declared import check_declared
from container.predictors.features import feature_matrix, float64_matrix
from container.predictors.network_outputs import declared_output, task_values
from container.predictors.onnx_runtime import FLOAT_TYPES, OrtGraph, ort_session
from container.predictors.two_path import TwoPathModel

# attributes of ONNX-ML classifier nodes (and ZipMap) that hold the class labels
_LABEL_ATTRIBUTES = ("classlabels_strings", "classlabels_int64s", "classlabels_ints")
EXPORT_HINT = ("export the model again with one float input of shape (rows, features) "
               "(skl2onnx: initial_types=[('input', FloatTensorType([None, n]))]; "
               "torch.onnx.export with dynamic_axes on the first axis)")


def _labels(node: Any) -> list[str] | None:
    import onnx

    for attribute in node.attribute:
        if attribute.name in _LABEL_ATTRIBUTES:
            values = onnx.helper.get_attribute_value(attribute)
            return [v.decode() if isinstance(v, bytes) else str(v) for v in values]
    return None


def strip_zipmap(model: Any) -> list[str] | None:
    """Cut ZipMap nodes that produce a graph output off ``model`` (in place), making
    their input, an (n, k) probability tensor, the output instead. Returns the
    ZipMap's class labels, or ``None`` when the graph has no ZipMap output."""
    import onnx

    graph = model.graph
    outputs = {output.name: index for index, output in enumerate(graph.output)}
    labels = None
    for node in [n for n in graph.node if n.op_type == "ZipMap"]:
        if node.output[0] not in outputs:
            continue
        labels = _labels(node)
        probabilities = node.input[0]
        index = outputs[node.output[0]]
        replacement = onnx.helper.make_tensor_value_info(
            probabilities, onnx.TensorProto.FLOAT, ["rows", len(labels) if labels else None])
        if probabilities in outputs:  # already an output: just drop the ZipMap's
            del graph.output[index]
        else:
            graph.output[index].CopyFrom(replacement)
        graph.node.remove(node)
        outputs = {output.name: i for i, output in enumerate(graph.output)}
    return labels


def graph_kind(model: Any) -> tuple[str | None, list[str] | None]:
    """(task the graph's ONNX-ML nodes imply, class labels they record): a classifier
    node (``LinearClassifier``, ``TreeEnsembleClassifier``, ...) gives its labels, a
    regressor node ``regression``; a plain network says neither."""
    for node in model.graph.node:
        if node.op_type.endswith("Classifier"):
            labels = _labels(node)
            if labels:
                return ("binary" if len(labels) == 2 else "multiclass"), labels
        if node.op_type.endswith("Regressor"):
            return "regression", None
    return None, None


def _widths(session: Any, n_features: int, dtype: type) -> dict[str, int | None]:
    """Columns of each float output, from one run on two rows of zeros (shapes in a
    graph are often symbolic). ``None`` for an output that is no (n,) or (n, k)."""
    feed = {session.get_inputs()[0].name: np.zeros((2, n_features), dtype)}
    names = [o.name for o in session.get_outputs() if o.type in FLOAT_TYPES]
    values = session.run(names, feed)
    return {name: (1 if v.ndim == 1 else v.shape[1] if v.ndim == 2 else None)
            for name, v in zip(names, values, strict=True)}


def choose_output(widths: dict[str, int | None], task: str, artifact: str) -> str:
    """The float output that is the prediction of a ``task`` model; JobInputError
    naming the outputs when none or several could be."""
    def fits(width: int | None) -> bool:
        if width is None:
            return False
        return {"regression": width == 1, "binary": width in (1, 2)}.get(task, width >= 2)

    candidates = [name for name, width in widths.items() if fits(width)]
    if len(candidates) > 1:
        candidates = [name for name in candidates if "prob" in name.lower()] or candidates
    if len(candidates) == 1:
        return candidates[0]
    described = ", ".join(f"{name} ({'?' if w is None else w} columns)"
                          for name, w in widths.items()) or "no float outputs"
    needs = {"regression": "one value per row", "binary":
             "P(positive) per row (1 column) or both classes' probabilities (2)"}.get(
                 task, "one probability per class (2 or more columns)")
    which = "several outputs could be it" if candidates else "no output fits"
    raise JobInputError(
        f"model artifact {artifact}: a {task} model needs {needs}, but {which}: "
        f"{described}. Export the model with one prediction output (skl2onnx classifiers "
        "with options={'zipmap': False} give 'label' and 'probabilities').")


class OnnxModel(TwoPathModel):
    """An ONNX graph scored by ONNX Runtime (the only path)."""

    framework_name = "ONNX Runtime"

    def __init__(self, metadata: ModelMetadata, bundle_dir: Path, threads: int,
                 predictor: str) -> None:
        import onnx

        self.metadata = metadata
        self.artifact = bundle_dir / metadata.artifact
        self.output = declared_output(metadata, str(self.artifact))
        try:
            model = onnx.load(str(self.artifact))
        except Exception as exc:  # protobuf DecodeError, OSError, ...
            raise JobInputError(
                f"model artifact {self.artifact} is not a readable ONNX model "
                f"({type(exc).__name__}: {exc}); export it again (skl2onnx, "
                "torch.onnx.export or tf2onnx) and re-import it") from exc
        zipmap_labels = strip_zipmap(model)
        self._kind, node_labels = graph_kind(model)
        self._labels = zipmap_labels or node_labels
        try:
            session = ort_session(model.SerializeToString() if zipmap_labels is not None
                                  else str(self.artifact), threads)
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph/NotImplemented
            raise JobInputError(
                f"model artifact {self.artifact} cannot be loaded by ONNX Runtime "
                f"({type(exc).__name__}: {exc}); export it with an opset this ONNX "
                "Runtime supports (17 is safe) and only standard operators") from exc
        self._input = self._check_input(session)
        columns = self._input.shape[1]
        where = f"ONNX model {self.artifact.name}"
        # what the graph's nodes say, before looking for the output the task needs
        check_declared(metadata, ModelFacts(
            feature_names=None, n_features=columns if isinstance(columns, int) else None,
            task=self._kind, class_labels=self._labels), where)
        dtype = FLOAT_TYPES[self._input.type]
        try:
            self._widths = _widths(session, len(metadata.features), dtype)
        except Exception as exc:  # e.g. an inner shape that needs another feature count
            raise JobInputError(
                f"model artifact {self.artifact} fails on 2 rows of its "
                f"{len(metadata.features)} declared features ({type(exc).__name__}: "
                f"{str(exc)[:300]}); check the model's features in the registry") from exc
        self._output = choose_output(self._widths, metadata.task, str(self.artifact))
        self.graph = OrtGraph(session, self._output)
        facts = self.facts()
        check_declared(metadata, facts, where)
        self._class_order = self._order_of_classes(facts)

    def _check_input(self, session: Any) -> Any:
        inputs = session.get_inputs()
        described = ", ".join(f"{i.name} {i.type} {i.shape}" for i in inputs)
        if len(inputs) != 1 or inputs[0].type not in FLOAT_TYPES or len(inputs[0].shape) != 2:
            raise JobInputError(
                f"model artifact {self.artifact} takes {described}, but the engine feeds "
                f"one float tensor of shape (rows, {len(self.metadata.features)}): "
                f"{EXPORT_HINT}")
        rows = inputs[0].shape[0]
        if isinstance(rows, int) and rows > 0:
            raise JobInputError(
                f"model artifact {self.artifact} takes exactly {rows} row(s) per call "
                f"({described}): {EXPORT_HINT}")
        return inputs[0]

    def _order_of_classes(self, facts: ModelFacts) -> list[int] | None:
        """Columns of the probability output in the metadata's class order."""
        if self.metadata.task != "multiclass" or not facts.class_labels:
            return None
        if sorted(facts.class_labels) != sorted(self.metadata.class_labels):
            raise JobInputError(
                f"model {self.metadata.name!r}: {self.artifact} records classes "
                f"{facts.class_labels}, not the class labels model.json declares "
                f"{self.metadata.class_labels}; fix the class labels and re-import it")
        order = [facts.class_labels.index(label) for label in self.metadata.class_labels]
        return None if order == sorted(order) else order

    def facts(self) -> ModelFacts:
        """Feature count from the input's shape; the task and class labels an ONNX-ML
        classifier or regressor node records; else the class count from a probability
        output of two or more columns (a one-column output may be a probability or a
        value, so the task stays unknown). ONNX records no feature names."""
        columns = self._input.shape[1]
        width = self._widths.get(self._output)
        task = self._kind
        if task is None and width is not None and width >= 3:
            task = "multiclass"
        classes = len(self._labels) if self._labels else (
            width if width is not None and width >= 2 else None)
        return ModelFacts(feature_names=None,
                          n_features=columns if isinstance(columns, int) else None,
                          task=task, class_labels=self._labels, n_classes=classes)

    @property
    def feature_precision(self) -> type:
        return self.graph.dtype

    def _framework_prepare(self, batch: pa.RecordBatch) -> np.ndarray:
        if self.graph.dtype is np.float64:
            return float64_matrix(batch, self.metadata.features)
        return feature_matrix(batch, self.metadata.features)

    def _framework_predict(self, features: np.ndarray) -> np.ndarray:
        raw = self.graph.run(features)
        if self._class_order is not None:
            raw = raw[:, self._class_order]
        return task_values(raw, self.metadata.task, self.output, str(self.artifact))


def load(metadata: ModelMetadata, bundle_dir: Path, threads: int,
         predictor: str) -> OnnxModel:
    return OnnxModel(metadata, bundle_dir, threads, predictor)
