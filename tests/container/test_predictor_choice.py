"""A network whose framework was faster per batch at import is still scored by its
verified ONNX export when the shard is too small to repay the framework's import."""

from __future__ import annotations

from container.contract import DEFAULT_BATCH_ROWS, ModelMetadata
from container.framework_table import framework
from container.frameworks import framework_pays_off


def _metadata(winner: str, framework_s: float, onnx_s: float) -> ModelMetadata:
    return ModelMetadata(
        name="m", version="v", framework="tensorflow", features=["a"], key_columns=["id"],
        artifact="model.keras", fastest_predictor=winner, onnx_export="model.onnx",
        onnx_export_sha256="x",
        predictor_timings={str(DEFAULT_BATCH_ROWS): [framework_s, onnx_s]})


def test_the_framework_is_imported_only_for_shards_that_repay_it():
    # measured in the short benchmark: Keras 0.086 s, ONNX Runtime 0.112 s per batch
    keras = _metadata("framework", 0.086, 0.112)
    saving_per_row = (0.112 - 0.086) / DEFAULT_BATCH_ROWS
    break_even = framework("tensorflow").import_seconds / saving_per_row  # ~7.6M rows
    assert not framework_pays_off(keras, 100_000)
    assert not framework_pays_off(keras, int(break_even * 0.9))
    assert framework_pays_off(keras, int(break_even * 1.1))
    assert framework_pays_off(keras, None)  # rows unknown: the import's verdict
    # ONNX Runtime won at import: never the framework
    assert not framework_pays_off(_metadata("onnxruntime", 0.2, 0.1), 10**9)
