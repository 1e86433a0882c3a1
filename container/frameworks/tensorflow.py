"""TensorFlow models: a Keras ``.keras`` file or a SavedModel directory, scored by
TensorFlow or by ONNX Runtime.

* ``.keras`` (Keras 3 on the TensorFlow backend) is loaded with ``safe_mode=True``
  (a ``Lambda`` layer's pickled Python bytecode is refused, not run) and
  ``compile=False`` (scoring needs no optimizer or loss).
* A SavedModel directory (``model.export(path)``, ``tf.saved_model.save``) is scored
  through its ``serving_default`` signature, which must take one float32 tensor of
  shape (rows, features) and return one tensor.

Outputs as for torch: (rows, 1)/(rows,) for binary (P(positive)) and regression,
(rows, k) for multiclass; probabilities or logits per ``ModelMetadata.output``
(``container.predictors.network_outputs``).

Framework path: a ``tf.function`` over the model with a fixed input signature
(float32, (None, features)), so every batch size reuses one traced graph instead of
retracing per shape as a plain call or ``model.predict`` may. Threads: TensorFlow's
intra-op pool is set to the engine's threads per worker and the inter-op pool to 1
before TensorFlow's runtime starts (it cannot change afterwards: a second model in
one process keeps the first one's setting, logged).

Fast path (``predictor = "auto"``, tf2onnx installed): the same ``tf.function``
converted by ``tf2onnx.convert.from_function`` (``from_keras`` fails on Keras 3) and
scored by ONNX Runtime, checked against TensorFlow on the job's first batch within
1e-5 and timed against it at two batch sizes (``container.predictors.fastest``);
whichever is faster scores each batch size. One real disagreement this catches:
in graph mode (``tf.function``, as ``model.predict`` runs) TensorFlow fuses
MatMul+BiasAdd+ReLU into one oneDNN kernel that turns NaN into 0, so a row with a
missing value gets a number, where ONNX Runtime (and an eager call) gives NaN; a
model scored on rows with missing values therefore keeps TensorFlow, whose output is
what ``model.predict`` gives.

That fast path runs at job start only for bundles without a verified export, as for
TorchScript (``container.frameworks.torch``): imported bundles carry ``model.onnx``
made by ``export_onnx`` below at import.
"""

from __future__ import annotations

import logging
import os
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from container.contract import ModelMetadata
from container.errors import JobInputError
from container.predictors.base import ModelFacts
from container.predictors.declared import check_declared
from container.predictors.fastest import RacedTwoPathModel
from container.predictors.features import feature_matrix
from container.predictors.network_outputs import declared_output, task_values

log = logging.getLogger("container.frameworks.tensorflow")

EXPORT_OPSET = 17
SERVING_SIGNATURE = "serving_default"
SAVE_HINT = ("save the model with model.save('model.keras') or export a SavedModel "
             "(model.export(path) / tf.saved_model.save) and re-import it")


def _import_tensorflow(threads: int) -> Any:
    """TensorFlow with its thread pools set, if it has not started yet."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before the first import
    import tensorflow as tf

    threading = tf.config.threading
    wanted = {"intra-op": (threading.get_intra_op_parallelism_threads,
                           threading.set_intra_op_parallelism_threads, threads),
              "inter-op": (threading.get_inter_op_parallelism_threads,
                           threading.set_inter_op_parallelism_threads, 1)}
    for name, (get, put, value) in wanted.items():
        if get() == value:
            continue
        try:
            put(value)
        except RuntimeError:  # the runtime already started (another model before)
            log.warning("TensorFlow's %s threads are already %s (not %s): TensorFlow "
                        "started before this model was loaded", name, get(), value)
    return tf


def _message(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:300] if text else ''}"


class TensorFlowModel(RacedTwoPathModel):
    fast_name = "ONNX Runtime (tf2onnx)"

    def __init__(self, metadata: ModelMetadata, bundle_dir: Path, threads: int,
                 predictor: str) -> None:
        tf = _import_tensorflow(threads)
        self.metadata = metadata
        self.artifact = bundle_dir / metadata.artifact
        self.output = declared_output(metadata, str(self.artifact))
        columns = len(metadata.features)
        self.signature = [tf.TensorSpec([None, columns], tf.float32, name="features")]
        if self.artifact.is_dir():
            self.framework_name = "TensorFlow SavedModel (tf.function)"
            call, self._n_features, self._width = self._saved_model(tf)
        else:
            self.framework_name = "Keras (tf.function)"
            call, self._n_features, self._width = self._keras(tf)
        what = f"TensorFlow model {self.artifact.name}"
        check_declared(metadata, self.facts(), what)  # the widths the artifact records
        self.function = tf.function(call, input_signature=self.signature)
        self._probe(tf)
        check_declared(metadata, self.facts(), what)  # and the output's, as called
        if predictor == "auto":
            self._fast = self._convert(threads)

    def _keras(self, tf: Any) -> tuple[Any, int | None, int | None]:
        import keras

        if keras.backend.backend() != "tensorflow":
            raise JobInputError(
                f"model artifact {self.artifact}: Keras runs on the "
                f"{keras.backend.backend()!r} backend here; unset KERAS_BACKEND (or set it "
                "to 'tensorflow') to score TensorFlow models")
        if not zipfile.is_zipfile(self.artifact):
            raise JobInputError(
                f"model artifact {self.artifact} is not a Keras .keras file (a zip "
                f"archive) nor a SavedModel directory; {SAVE_HINT}")
        try:
            model = keras.saving.load_model(str(self.artifact), compile=False, safe_mode=True)
        except Exception as exc:  # ValueError, KeyError, TypeError for bad archives
            raise JobInputError(
                f"model artifact {self.artifact} is not a loadable Keras model "
                f"({_message(exc)}); {SAVE_HINT}. Custom layers must be registered "
                "(keras.saving.register_keras_serializable) and Lambda layers are "
                "refused (safe_mode)") from exc
        inputs, outputs = list(model.inputs), list(model.outputs)
        if len(inputs) != 1 or len(inputs[0].shape) != 2 or len(outputs) != 1:
            raise JobInputError(
                f"model artifact {self.artifact}: the model takes "
                f"{[tuple(i.shape) for i in inputs]} and returns "
                f"{[tuple(o.shape) for o in outputs]}; it must take one tensor "
                f"(rows, {len(self.metadata.features)}) and return one tensor")
        self.model = model
        return ((lambda x: model(x, training=False)), inputs[0].shape[1],
                outputs[0].shape[-1] if len(outputs[0].shape) == 2 else 1)

    def _saved_model(self, tf: Any) -> tuple[Any, int | None, int | None]:
        try:
            loaded = tf.saved_model.load(str(self.artifact))
        except Exception as exc:  # OSError for a bad saved_model.pb, ValueError, ...
            raise JobInputError(
                f"model artifact {self.artifact} is not a readable SavedModel directory "
                f"({_message(exc)}); {SAVE_HINT}") from exc
        signature = loaded.signatures.get(SERVING_SIGNATURE)
        if signature is None:
            raise JobInputError(
                f"model artifact {self.artifact}: the SavedModel has no "
                f"{SERVING_SIGNATURE!r} signature (it has {list(loaded.signatures)}); "
                "export it with model.export(path) or tf.saved_model.save(..., "
                "signatures=...)")
        _, inputs = signature.structured_input_signature
        outputs = signature.structured_outputs
        if (len(inputs) != 1 or len(outputs) != 1
                or len(next(iter(inputs.values())).shape) != 2):
            raise JobInputError(
                f"model artifact {self.artifact}: its {SERVING_SIGNATURE} signature takes "
                f"{inputs} and returns {outputs}; it must take one float32 tensor (rows, "
                f"{len(self.metadata.features)}) and return one tensor")
        (input_name, spec), = inputs.items()
        (output_name, output_spec), = outputs.items()
        self.model = loaded  # keeps the variables the signature captures alive
        width = output_spec.shape[-1] if len(output_spec.shape) == 2 else 1
        return ((lambda x: signature(**{input_name: x})[output_name]), spec.shape[1], width)

    def _probe(self, tf: Any) -> None:
        """One call on two rows of zeros: a model that does not take the declared
        feature count fails the job here, naming the artifact."""
        try:
            out = self.function(tf.zeros([2, len(self.metadata.features)]))
        except Exception as exc:
            raise JobInputError(
                f"model artifact {self.artifact}: the model fails on a float32 tensor of "
                f"shape (rows, {len(self.metadata.features)}): {_message(exc)}") from exc
        self._width = 1 if out.shape.rank == 1 else int(out.shape[-1])

    def export_onnx(self) -> bytes:
        """The model's ``tf.function`` as an ONNX graph (tf2onnx). Raises what tf2onnx
        raises (ModuleNotFoundError when it is not installed, an op it cannot
        convert)."""
        import tf2onnx

        logging.getLogger("tf2onnx").setLevel(logging.WARNING)  # INFO per conversion step
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            proto, _ = tf2onnx.convert.from_function(
                self.function, input_signature=self.signature, opset=EXPORT_OPSET)
        return proto.SerializeToString()

    def _convert(self, threads: int) -> Any:
        from container.predictors.onnx_runtime import OrtGraph, OrtPredictor, ort_session

        try:
            graph = OrtGraph(ort_session(self.export_onnx(), threads))
        except Exception as exc:  # tf2onnx missing or an op it cannot convert
            self.fast_refusal = f"ONNX Runtime not used: tf2onnx failed ({_message(exc)})"
            log.info("%s: %s", self.artifact.name, self.fast_refusal)
            return None
        return OrtPredictor(graph, self._shape)

    def _shape(self, raw: Any) -> np.ndarray:
        return task_values(raw, self.metadata.task, self.output, str(self.artifact))

    def facts(self) -> ModelFacts:
        """The input's width (Keras and SavedModel signatures record it), and from the
        output's: multiclass for three or more columns (one column is a probability
        or a value, two may be a binary model's two probabilities). No feature names
        or class labels are recorded."""
        width = self._width or 1
        return ModelFacts(feature_names=None,
                          n_features=int(self._n_features) if self._n_features else None,
                          task="multiclass" if width >= 3 else None,
                          n_classes=width if width >= 2 else None)

    def _framework_prepare(self, batch: pa.RecordBatch) -> np.ndarray:
        return feature_matrix(batch, self.metadata.features)

    def _framework_predict(self, features: np.ndarray) -> np.ndarray:
        return self._shape(self.function(features).numpy())


def load(metadata: ModelMetadata, bundle_dir: Path, threads: int,
         predictor: str) -> TensorFlowModel:
    return TensorFlowModel(metadata, bundle_dir, threads, predictor)
