"""TorchScript modules (container/frameworks/torch.py): predictions equal the module's
own within 1e-5 on either path, the faster verified path scores each batch size, a
disagreeing or unexportable graph leaves PyTorch scoring, the probability/logit
convention holds, and broken artifacts fail naming the file. Bundles with the ONNX
export verified at import (container/predictors/verified_export.py) score without
importing PyTorch; a changed export file is not trusted."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import replace

import numpy as np
import pytest

from container.contract import DEFAULT_BATCH_ROWS, ONNX_EXPORT_FILE, ModelMetadata
from container.errors import JobInputError
from container.frameworks import load_model
from container.model_bundle import read_metadata, write_metadata
from tests.support.framework_bundles import (
    corrupt,
    failed_container,
    feature_names,
    filled,
    record_batch,
    rows,
    run_container,
    run_container_in_new_process,
    with_verified_export,
    worst,
    write_bundle,
)

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from container.frameworks.torch import load  # noqa: E402
from container.predictors.fastest import GRAPH_TOLERANCE, MARGIN  # noqa: E402

NAMES = feature_names(6)
LABELS = ["a", "b", "c"]
FAST = "ONNX Runtime (torch.onnx.export)"
FRAMEWORK = "torch inference_mode"


class Net(torch.nn.Module):
    """A small MLP ending in ``head``: sigmoid, softmax or nothing (a value or logits)."""

    def __init__(self, outputs: int, head: str, inputs: int = 6) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = torch.nn.Sequential(torch.nn.Linear(inputs, 32), torch.nn.ReLU(),
                                        torch.nn.Linear(32, outputs))
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        if self.head == "sigmoid":
            return torch.sigmoid(y)
        if self.head == "softmax":
            return torch.softmax(y, dim=1)
        return y


class Erfinv(torch.nn.Module):
    """``erfinv`` has no ONNX export (opset 17)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(torch.special.erfinv(torch.tanh(x)).sum(1, keepdim=True))


class Noisy(torch.nn.Module):
    """Test-time noise: ONNX Runtime's random numbers are not PyTorch's."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid((x + torch.randn_like(x)).sum(1, keepdim=True))


HEADS = {"binary": (1, "sigmoid"), "multiclass": (3, "softmax"), "regression": (1, "none")}


FILLS = {name: 0.25 * index for index, name in enumerate(NAMES)}


def save(tmp_path, module: torch.nn.Module, task: str, name: str = "model.pt",
         fill_values: dict | None = None):
    """The scripted module and its model.json (with ``fill_values``: a filling model,
    else the default policy for torch, refuse)."""
    torch.jit.save(torch.jit.script(module.eval()), str(tmp_path / name))
    policy = {"missing_values": "fill", "fill_values": fill_values} if fill_values else {}
    return write_bundle(tmp_path, "torch", name, task, NAMES,
                        LABELS if task == "multiclass" else None, **policy)


def module_output(module: torch.nn.Module, matrix: np.ndarray) -> np.ndarray:
    """The module's own predictions in the engine's shape (the reference)."""
    with torch.no_grad():
        out = module.eval()(torch.from_numpy(matrix)).numpy().astype(np.float64)
    return out[:, 0] if out.shape[1] == 1 else out


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_predictions_equal_the_module_on_the_faster_verified_path(tmp_path, task):
    data = rows(missing=0.02)  # NaN propagates to NaN on both paths
    module = Net(*HEADS[task])
    metadata = save(tmp_path, module, task)
    model = load(metadata, tmp_path, threads=2, predictor="auto")
    batch = record_batch(data, NAMES)

    checked = model.verify_fast_path(batch.slice(0, 1_000))
    predicted = model.predict(batch)

    assert predicted.shape == ((len(data), 3) if task == "multiclass" else (len(data),))
    assert worst(predicted, module_output(module, data)) <= GRAPH_TOLERANCE
    assert np.isnan(predicted).any()
    # both agreed, then were timed at the sample's size and the default batch size;
    # each size is scored by the one that was faster there
    assert "max difference" in checked and "timed" in checked
    assert sorted(model.timings) == [1_000, DEFAULT_BATCH_ROWS]
    for size, (framework, fast) in model.timings.items():
        assert model.uses_fast_path(size) == (fast < MARGIN * framework), model.timings
    assert FAST in model.predictor_name or model.predictor_name == FRAMEWORK
    facts = model.facts()
    assert (facts.feature_names, facts.n_features) == (None, None)  # not recorded
    assert facts.task == ("multiclass" if task == "multiclass" else None)
    assert facts.n_classes == (3 if task == "multiclass" else None)


def test_framework_predictor_is_the_module_itself(tmp_path):
    data = rows(missing=0.02)
    module = Net(3, "softmax")
    model = load(save(tmp_path, module, "multiclass"), tmp_path, 2, "framework")
    batch = record_batch(data, NAMES)
    assert model.verify_fast_path(batch) == "no faster predictor for this model"
    assert model.predictor_name == FRAMEWORK
    np.testing.assert_array_equal(model.predict(batch), module_output(module, data))


def test_logits_declared_as_such_get_the_sigmoid_or_softmax(tmp_path):
    data = rows()
    for task, outputs in (("binary", 1), ("multiclass", 3)):
        module = Net(outputs, "none")
        declared = save(tmp_path, module, task)
        metadata = ModelMetadata(**{**declared.to_dict(), "network_output": "logit"})
        model = load(metadata, tmp_path, 2, "auto")
        batch = record_batch(data, NAMES)
        model.verify_fast_path(batch.slice(0, 500))
        logits = module_output(module, data)
        expected = (1 / (1 + np.exp(-logits)) if task == "binary"
                    else np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True))
        assert worst(model.predict(batch), expected) <= GRAPH_TOLERANCE


def test_logits_declared_as_probabilities_fail_the_job(tmp_path):
    model = load(save(tmp_path, Net(1, "none"), "binary"), tmp_path, 1, "framework")
    with pytest.raises(JobInputError, match=r"model\.pt returned values outside \[0, 1\]"
                                            r".*network_output = \"logit\""):
        model.predict(record_batch(rows(), NAMES))


def test_a_module_that_does_not_export_is_scored_by_pytorch(tmp_path):
    data = rows()
    module = Erfinv()
    model = load(save(tmp_path, module, "binary"), tmp_path, 2, "auto")
    batch = record_batch(data, NAMES)
    assert "does not export" in model.verify_fast_path(batch)
    assert model.predictor_name == FRAMEWORK
    np.testing.assert_array_equal(model.predict(batch), module_output(module, data))


def test_a_graph_that_disagrees_is_dropped(tmp_path):
    model = load(save(tmp_path, Noisy(), "binary"), tmp_path, 2, "auto")
    assert model._fast is not None  # it exported
    checked = model.verify_fast_path(record_batch(rows(), NAMES))
    assert model.predictor_name == FRAMEWORK, checked
    assert "timed" not in checked


def test_a_module_for_other_features_fails_naming_the_artifact(tmp_path):
    metadata = save(tmp_path, Net(1, "sigmoid", inputs=5), "binary")
    with pytest.raises(JobInputError, match=r"model\.pt: the module fails on a float32 "
                                            r"tensor of shape \(rows, 6\)"):
        load(metadata, tmp_path, 1, "auto")


def test_a_module_with_three_outputs_declared_binary_is_refused(tmp_path):
    save(tmp_path, Net(3, "softmax"), "multiclass")
    metadata = write_bundle(tmp_path, "torch", "model.pt", "binary", NAMES)
    with pytest.raises(JobInputError, match=r"declared task 'binary'.*multiclass model"):
        load(metadata, tmp_path, 1, "auto")


@pytest.mark.parametrize("damage", ["truncated", "state_dict"])
def test_a_broken_artifact_fails_naming_the_file(tmp_path, damage):
    metadata = save(tmp_path, Net(1, "sigmoid"), "binary")
    artifact = tmp_path / "model.pt"
    if damage == "truncated":
        corrupt(artifact)
    else:  # torch.save of weights: no TorchScript code to run
        torch.save(Net(1, "sigmoid").state_dict(), str(artifact))
    with pytest.raises(JobInputError, match=f"{artifact} is not a readable TorchScript "
                                            r"module.*torch\.jit\.save"):
        load(metadata, tmp_path, 1, "auto")


def test_the_container_fills_a_modules_missing_values_and_scores_them(tmp_path, monkeypatch):
    data = rows(missing=0.02)
    module = Net(1, "sigmoid")
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    save(bundle, module, "binary", fill_values=FILLS)

    output, manifest = run_container(tmp_path, monkeypatch, bundle, data, NAMES)

    scored = output.column("prediction").to_numpy(zero_copy_only=False)
    assert not np.isnan(scored).any()  # every row a number, from the filled values
    assert worst(scored, module_output(module, filled(data, FILLS, NAMES))) <= GRAPH_TOLERANCE
    assert set(manifest["predictor_rows"]) <= {FRAMEWORK, FAST}
    assert sum(manifest["predictor_rows"].values()) == manifest["rows_out"]


# --- the ONNX export made at import (container/predictors/verified_export.py) ----------


def test_import_stores_a_verified_and_timed_export(tmp_path):
    module = Net(3, "softmax")
    metadata = with_verified_export(tmp_path, save(tmp_path, module, "multiclass"))

    stored = read_metadata(tmp_path)  # as a job reads it: the fields survive model.json
    graph = tmp_path / ONNX_EXPORT_FILE
    assert stored == metadata and stored.onnx_export == ONNX_EXPORT_FILE
    assert stored.onnx_export_sha256 == hashlib.sha256(graph.read_bytes()).hexdigest()
    assert stored.onnx_export_tolerance == GRAPH_TOLERANCE
    assert 0 <= stored.onnx_export_max_difference <= GRAPH_TOLERANCE
    assert stored.onnx_export_verified_on == "4,096 synthetic rows (seed 0)"
    assert stored.onnx_export_agrees_on_missing  # PyTorch and ONNX Runtime: NaN in, NaN out
    assert sorted(stored.predictor_timings, key=int) == ["2048", str(DEFAULT_BATCH_ROWS)]
    framework, fast = stored.predictor_timings[str(DEFAULT_BATCH_ROWS)]
    assert stored.fastest_predictor == ("onnxruntime" if fast < MARGIN * framework
                                        else "framework")


def test_the_export_is_verified_on_the_holdout_rows_when_given(tmp_path):
    holdout = rows(count=1_000, missing=0.01, seed=4)
    complete = int((~np.isnan(holdout).any(axis=1)).sum())
    metadata = with_verified_export(tmp_path, save(tmp_path, Net(1, "sigmoid"), "binary"),
                                    holdout=holdout)
    assert metadata.onnx_export_verified_on == f"{complete:,} holdout rows"
    assert metadata.onnx_export_agrees_on_missing  # checked on the holdout's other rows


def test_a_verified_export_scores_without_importing_pytorch(tmp_path):
    data = rows(missing=0.02)
    module = Net(1, "sigmoid")
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    with_verified_export(bundle, save(bundle, module, "binary", fill_values=FILLS),
                         fastest="onnxruntime")

    output, manifest, imported = run_container_in_new_process(tmp_path, bundle, data, NAMES)

    assert imported == []  # no torch, no TensorFlow in the scoring process
    assert manifest["predictor_rows"] == {
        "ONNX Runtime (ONNX export verified at import)": manifest["rows_out"]}
    scored = output.column("prediction").to_numpy(zero_copy_only=False)
    assert worst(scored, module_output(module, filled(data, FILLS, NAMES))) <= GRAPH_TOLERANCE


def test_a_module_refuses_missing_values_by_default(tmp_path, monkeypatch):
    data = rows(missing=0.02)
    missing = int(np.isnan(data[:1_500, 0]).sum())  # the first file's, in column x0
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    save(bundle, Net(1, "sigmoid"), "binary")

    message = failed_container(tmp_path, monkeypatch, bundle, data, NAMES)

    assert "input file part-0.parquet" in message
    assert f"'x0' {missing:,}" in message
    assert 'missing_values = "refuse" (the default for torch' in message
    assert 'missing_values = "fill"' in message  # the fix


def test_a_bundle_whose_framework_won_at_import_scores_with_pytorch_without_exporting(
        tmp_path):
    data = rows()
    module = Net(1, "sigmoid")
    metadata = with_verified_export(tmp_path, save(tmp_path, module, "binary"),
                                    fastest="framework")
    model = load_model(metadata, tmp_path, 2, "auto")
    assert model.predictor_name == FRAMEWORK and model._fast is None
    assert model.verify_fast_path(record_batch(data, NAMES)) == \
        "no faster predictor for this model"  # not exported again, not raced
    np.testing.assert_array_equal(model.predict(record_batch(data, NAMES)),
                                  module_output(module, data))


def test_the_framework_predictor_ignores_the_export(tmp_path):
    metadata = with_verified_export(tmp_path, save(tmp_path, Net(1, "sigmoid"), "binary"),
                                    fastest="onnxruntime")
    assert load_model(metadata, tmp_path, 2, "framework").predictor_name == FRAMEWORK


def test_an_old_bundle_without_the_export_fields_scores_as_before(tmp_path, monkeypatch):
    """model.json as written before the export moved to import: exported at job start,
    checked on the first batch and raced, in the scoring process."""
    data = rows()
    module = Net(1, "sigmoid")
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    metadata = save(bundle, module, "binary")
    assert "fastest_predictor" in metadata.to_dict()  # the new fields, at their defaults
    old = {k: v for k, v in metadata.to_dict().items() if not k.startswith(
        ("onnx_export", "fastest_predictor", "predictor_timings"))}
    (bundle / "model.json").write_text(json.dumps(old))

    model = load_model(read_metadata(bundle), bundle, 2, "auto")
    assert model._fast is not None  # exported now, at load
    assert "timed" in model.verify_fast_path(record_batch(data, NAMES).slice(0, 1_000))
    output, manifest = run_container(tmp_path, monkeypatch, bundle, data, NAMES)
    assert set(manifest["predictor_rows"]) <= {FRAMEWORK, FAST}
    assert sum(manifest["predictor_rows"].values()) == manifest["rows_out"]
    assert not (bundle / ONNX_EXPORT_FILE).exists()
    scored = output.column("prediction").to_numpy(zero_copy_only=False)
    assert worst(scored, module_output(module, data)) <= GRAPH_TOLERANCE


def test_a_changed_export_file_is_not_trusted(tmp_path, caplog):
    """The stored graph replaced by another module's (a valid graph that computes
    something else): its digest is not the verified one, so the job exports the
    artifact again and checks it, as for a bundle without an export."""
    import io

    data = rows()
    module = Net(1, "sigmoid")
    metadata = with_verified_export(tmp_path, save(tmp_path, module, "binary"),
                                    fastest="onnxruntime")
    other = Net(1, "sigmoid", inputs=6)
    torch.nn.init.constant_(other.body[0].weight, 0.5)
    buffer = io.BytesIO()
    torch.onnx.export(other.eval(), (torch.zeros(2, 6),), buffer, dynamo=False,
                      opset_version=17, input_names=["features"], output_names=["output"],
                      dynamic_axes={"features": {0: "rows"}, "output": {0: "rows"}})
    (tmp_path / ONNX_EXPORT_FILE).write_bytes(buffer.getvalue())

    with caplog.at_level(logging.WARNING, logger="container.frameworks"):
        model = load_model(metadata, tmp_path, 2, "auto")
    assert "is not the verified graph" in caplog.text
    assert "exporting and checking it at job start instead" in caplog.text
    model.verify_fast_path(record_batch(data, NAMES).slice(0, 1_000))
    assert model.predictor_name != "ONNX Runtime (ONNX export verified at import)"
    assert worst(model.predict(record_batch(data, NAMES)),
                 module_output(module, data)) <= GRAPH_TOLERANCE


def test_an_export_that_disagrees_at_import_is_not_kept(tmp_path):
    metadata = with_verified_export(tmp_path, save(tmp_path, Noisy(), "binary"))
    assert (metadata.fastest_predictor, metadata.onnx_export) == ("framework", "")
    assert "differs from the framework by" in metadata.onnx_export_note
    assert "tolerance 1e-05" in metadata.onnx_export_note
    assert not (tmp_path / ONNX_EXPORT_FILE).exists()
    model = load_model(metadata, tmp_path, 2, "auto")
    assert model.predictor_name == FRAMEWORK and model._fast is None


def test_a_module_that_does_not_export_is_recorded_at_import(tmp_path):
    metadata = with_verified_export(tmp_path, save(tmp_path, Erfinv(), "binary"))
    assert (metadata.fastest_predictor, metadata.onnx_export) == ("framework", "")
    assert metadata.onnx_export_note.startswith("model.pt does not export to ONNX")


def test_an_export_recorded_without_its_digest_is_refused(tmp_path):
    metadata = with_verified_export(tmp_path, save(tmp_path, Net(1, "sigmoid"), "binary"))
    write_metadata(replace(metadata, onnx_export=ONNX_EXPORT_FILE, onnx_export_sha256=""),
                   tmp_path)
    with pytest.raises(JobInputError, match=r"has no onnx_export_sha256.*re-import"):
        read_metadata(tmp_path)
