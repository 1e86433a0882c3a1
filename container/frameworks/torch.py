"""TorchScript modules (``torch.jit.save``), scored by PyTorch or by ONNX Runtime.

The artifact is a TorchScript archive: it carries its code, so loading it runs no
pickled Python (unlike ``torch.save`` of a module) and needs no class definitions.
The module takes one float32 tensor (rows, features) in ``ModelMetadata.features``
order and returns (rows, 1) or (rows,) (binary: P(positive); regression: the value)
or (rows, k) (multiclass probabilities in ``class_labels`` order). Whether a
classifier returns probabilities or logits is ``ModelMetadata.output``
(``container.predictors.network_outputs``: default ``probability``, checked on every
batch).

Framework path: the module under ``torch.inference_mode()`` on each batch as the
engine gives it, ``torch.set_num_threads(threads)``. The module is loaded with
``map_location="cpu"`` (a module saved on a GPU loads) and put in eval mode.

Fast path (``predictor = "auto"``): a second copy of the module exported with
``torch.onnx.export(..., dynamo=False)`` (the TorchScript exporter; the default
dynamo exporter cannot take a ScriptModule and needs onnxscript) and scored by ONNX
Runtime. It is checked against the module on the job's first batch within 1e-5 and
then timed against it at two batch sizes (``container.predictors.fastest``), because
ONNX Runtime is not always the faster: whichever is faster scores each batch size,
and ``predictor_name`` says which. Modules that do not export (an operator ONNX
lacks, such as ``erfinv``) are scored by PyTorch.

That fast path runs at job start only for bundles without a verified export: since
the export moved to import (``container.predictors.verified_export``, using
``export_onnx`` below), an imported bundle carries ``model.onnx`` and the import's
verdict, and ``container.frameworks.load_model`` scores it with ONNX Runtime alone
(``container.predictors.exported``) or with this module and ``predictor =
"framework"``.

Exporting a module and then calling it under ``inference_mode`` fails in PyTorch
2.13 ("Inference tensors cannot be saved for backward"), hence the second copy.

PyTorch 2.13 deprecates TorchScript (``torch.jit.*`` warn and point to
``torch.export``). Its successor, an ``ExportedProgram`` (``.pt2``), is not read
here yet: its ONNX export needs the dynamo exporter and onnxscript.
"""

from __future__ import annotations

import io
import logging
import warnings
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

log = logging.getLogger("container.frameworks.torch")

EXPORT_OPSET = 17  # supported by every ONNX Runtime since 1.15
SAVE_HINT = ("save it with torch.jit.save(torch.jit.script(model), path) (or "
             "torch.jit.trace(model, example_rows)) and re-import it")


def load_module(data: bytes, artifact: Path) -> Any:
    """The TorchScript module in ``data`` on the CPU in eval mode; JobInputError naming
    ``artifact`` if it is none."""
    import torch

    try:
        module = torch.jit.load(io.BytesIO(data), map_location="cpu")
    except Exception as exc:  # RuntimeError for a bad archive, ValueError, ...
        raise JobInputError(
            f"model artifact {artifact} is not a readable TorchScript module "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
            f"{SAVE_HINT}") from exc
    return module.eval()


class TorchModel(RacedTwoPathModel):
    framework_name = "torch inference_mode"
    fast_name = "ONNX Runtime (torch.onnx.export)"

    def __init__(self, metadata: ModelMetadata, bundle_dir: Path, threads: int,
                 predictor: str) -> None:
        import torch

        self.metadata = metadata
        self.artifact = bundle_dir / metadata.artifact
        self.output = declared_output(metadata, str(self.artifact))
        # process-wide; the engine scores one model per process, and each worker
        # thread's calls use at most this many threads (workers x threads <= cores)
        torch.set_num_threads(threads)
        try:
            data = self.artifact.read_bytes()
        except OSError as exc:
            raise JobInputError(f"model artifact {self.artifact} is unreadable: {exc}") from exc
        self._data = data
        self.module = load_module(data, self.artifact)
        self._width = self._probe()
        check_declared(metadata, self.facts(), f"TorchScript module {self.artifact.name}")
        if predictor == "auto":
            self._fast = self._export(threads)

    def _probe(self) -> int:
        """Columns of the module's output, from one call on two rows of zeros; a module
        that does not take (rows, features) float32 or returns no such tensor fails
        the job here, naming the artifact."""
        import torch

        columns = len(self.metadata.features)
        try:
            with torch.inference_mode():
                out = self.module(torch.zeros(2, columns))
        except Exception as exc:
            raise JobInputError(
                f"model artifact {self.artifact}: the module fails on a float32 tensor of "
                f"shape (rows, {columns}) (the model's {columns} features): "
                f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1][:300]}") from exc
        if not isinstance(out, torch.Tensor) or out.ndim not in (1, 2) or len(out) != 2:
            what = (f"shape {tuple(out.shape)}" if isinstance(out, torch.Tensor)
                    else type(out).__name__)
            raise JobInputError(
                f"model artifact {self.artifact}: the module returns {what} for 2 rows; it "
                "must return one tensor of shape (rows,), (rows, 1) or (rows, classes)")
        return 1 if out.ndim == 1 else int(out.shape[1])

    def export_onnx(self) -> bytes:
        """The module as an ONNX graph (input ``features``, output ``output``, rows
        dynamic). Raises what the exporter raises for a module it cannot export."""
        import torch

        buffer = io.BytesIO()
        copy = load_module(self._data, self.artifact)  # see the module docstring
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(copy, (torch.zeros(2, len(self.metadata.features)),), buffer,
                              dynamo=False, opset_version=EXPORT_OPSET,
                              input_names=["features"], output_names=["output"],
                              dynamic_axes={"features": {0: "rows"}, "output": {0: "rows"}})
        return buffer.getvalue()

    def _export(self, threads: int) -> Any:
        """ONNX Runtime on the exported module, or ``None`` (logged) if it does not
        export or load."""
        from container.predictors.onnx_runtime import OrtGraph, OrtPredictor, ort_session

        try:
            graph = OrtGraph(ort_session(self.export_onnx(), threads))
        except Exception as exc:  # unsupported operators, ONNX Runtime missing, ...
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
            self.fast_refusal = (f"ONNX Runtime not used: the module does not export "
                                 f"({type(exc).__name__}: {first})")
            log.info("%s: %s", self.artifact.name, self.fast_refusal)
            return None
        return OrtPredictor(graph, self._shape)

    def _shape(self, raw: Any) -> np.ndarray:
        return task_values(raw, self.metadata.task, self.output, str(self.artifact))

    def facts(self) -> ModelFacts:
        """TorchScript records neither feature names nor the input's width (the module
        accepted the declared feature count when loaded). The output's width says
        multiclass for three or more columns; one column is a probability or a value
        and two may be a binary model's two probabilities, so the task stays unknown."""
        return ModelFacts(feature_names=None, n_features=None,
                          task="multiclass" if self._width >= 3 else None,
                          n_classes=self._width if self._width >= 2 else None)

    def _framework_prepare(self, batch: pa.RecordBatch) -> np.ndarray:
        return feature_matrix(batch, self.metadata.features)

    def _framework_predict(self, features: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            out = self.module(torch.from_numpy(features))
        return self._shape(out.numpy())


def load(metadata: ModelMetadata, bundle_dir: Path, threads: int,
         predictor: str) -> TorchModel:
    return TorchModel(metadata, bundle_dir, threads, predictor)
