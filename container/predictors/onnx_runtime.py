"""ONNX Runtime on the CPU: one session per graph, called with a float matrix.

The ``onnx`` framework scores its graphs with it, and the networks' fast path is
ONNX Runtime on their ONNX export (at job start, ``container.predictors.fastest``,
or verified at import, ``container.predictors.exported``).

Threads: ``intra_op_num_threads`` is the engine's threads per worker and
``inter_op_num_threads`` 1 (sequential execution), so workers x threads stays within
the cores; one session serves every worker thread (``run`` is thread-safe).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from container.predictors.features import feature_matrix

FLOAT_TYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64}


def ort_session(model: bytes | str, threads: int) -> Any:
    """An ONNX Runtime CPU session using ``threads`` threads per ``run`` call."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: warnings about unused initialisers
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


class OrtGraph:
    """One session with a single matrix input, returning one named output as it is."""

    def __init__(self, session: Any, output: str | None = None) -> None:
        self.session = session
        graph_input = session.get_inputs()[0]
        self.input_name = graph_input.name
        self.dtype = FLOAT_TYPES.get(graph_input.type, np.float32)
        self.output_names = [output] if output else [session.get_outputs()[0].name]

    def run(self, matrix: np.ndarray) -> np.ndarray:
        if matrix.dtype != self.dtype:
            matrix = matrix.astype(self.dtype)
        return self.session.run(self.output_names, {self.input_name: matrix})[0]


class OrtPredictor:
    """The fast path of torch and TensorFlow models: ONNX Runtime on the exported
    graph, its output shaped as the framework path shapes the model's."""

    def __init__(self, graph: Any, shape: Any) -> None:
        self.graph = graph
        self.shape = shape

    def prepare(self, batch: pa.RecordBatch, features: list[str]) -> np.ndarray:
        return feature_matrix(batch, features)

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        return self.shape(self.graph.run(matrix))
