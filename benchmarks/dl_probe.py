"""Probe: how fast can a tabular MLP be scored on CPU, per framework and fast path?

``python -m benchmarks.dl_probe --rows N`` builds one MLP (40 -> 256 -> 256 -> 1, ReLU,
sigmoid output) with random weights, loads the same weights into PyTorch and into
TensorFlow/Keras, and scores N float32 rows through each path:

* torch eager, batch 4,096 (autograd on, default threads: what a plain loop does)
* torch ``inference_mode``, batch 65,536, ``torch.set_num_threads(cores)``
* TorchScript (``torch.jit.trace``), batch 65,536
* ONNX Runtime on the ``torch.onnx.export`` model, batch 65,536: once exported by the
  default (dynamo) exporter, which needs onnxscript, and once by the deprecated
  TorchScript-based one (``dynamo=False``), which does not
* Keras ``model.predict``, batch 65,536
* a ``tf.function`` call, batch 65,536 (and the same with XLA, ``jit_compile=True``)
* ONNX Runtime on the Keras model converted by tf2onnx, batch 65,536

Every path's predictions are compared with torch eager's (and with the same network in
numpy float64); the table shows the largest absolute differences. Times are the best of
``--repeats`` runs, interleaved across paths so machine noise hits all of them alike,
after an untimed warm-up batch, and include moving data in and out of each framework;
setup (tracing, export, conversion, session creation) is shown apart. This informs which
fast path the engine should pick per model; it is not a test (exit 1 only if predictions
disagree beyond ``--tolerance``). Frameworks that are not installed are skipped.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

FEATURES = 40
HIDDEN = 256
SMALL_BATCH = 4_096
BIG_BATCH = 65_536

Weights = list[np.ndarray]  # [W1 (in, out), b1, W2, b2, W3, b3], Keras layout
Scorer = Callable[[np.ndarray], np.ndarray]


@dataclass
class Result:
    name: str
    batch: int
    seconds: float | None = None
    setup: float = 0.0
    max_abs_diff: float | None = None
    f64_diff: float | None = None
    note: str = ""


def make_weights(seed: int) -> Weights:
    """He-initialised layers; the output layer is scaled so sigmoids are not saturated."""
    rng = np.random.default_rng(seed)
    sizes = [FEATURES, HIDDEN, HIDDEN, 1]
    weights: Weights = []
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
        scale = np.sqrt(2.0 / fan_in) * (0.25 if i == len(sizes) - 2 else 1.0)
        weights.append((rng.standard_normal((fan_in, fan_out)) * scale).astype(np.float32))
        weights.append((rng.standard_normal(fan_out) * 0.1).astype(np.float32))
    return weights


def numpy_float64(weights: Weights, x: np.ndarray) -> np.ndarray:
    """The same network in float64: how far float32 paths are from exact arithmetic."""
    w = [a.astype(np.float64) for a in weights]
    h = np.maximum(x @ w[0] + w[1], 0.0)
    h = np.maximum(h @ w[2] + w[3], 0.0)
    return (1.0 / (1.0 + np.exp(-(h @ w[4] + w[5])))).reshape(-1)


def batched(score_batch: Scorer, batch: int) -> Scorer:
    def score(x: np.ndarray) -> np.ndarray:
        out = [score_batch(x[start:start + batch]).reshape(-1)
               for start in range(0, len(x), batch)]
        return np.concatenate(out)
    return score


# -- PyTorch -------------------------------------------------------------------------

def torch_model(weights: Weights):
    import torch

    layers = [torch.nn.Linear(FEATURES, HIDDEN), torch.nn.ReLU(),
              torch.nn.Linear(HIDDEN, HIDDEN), torch.nn.ReLU(),
              torch.nn.Linear(HIDDEN, 1), torch.nn.Sigmoid()]
    model = torch.nn.Sequential(*layers).eval()
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        for linear, w, b in zip(linears, weights[0::2], weights[1::2], strict=True):
            linear.weight.copy_(torch.from_numpy(w.T.copy()))
            linear.bias.copy_(torch.from_numpy(b))
    return model


def torch_paths(weights: Weights, cores: int, work: Path) -> list[tuple[str, int, Callable]]:
    """(name, batch, setup) triples; setup() returns (scorer, note)."""
    import torch

    logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # "torchvision is not installed"

    model = torch_model(weights)
    example = torch.zeros(BIG_BATCH, FEATURES)
    default_threads = torch.get_num_threads()

    def with_threads(threads: int, score: Scorer) -> Scorer:
        # Repeats are interleaved across paths: each path sets its own thread count.
        def run(x):
            torch.set_num_threads(threads)
            return score(x)
        return run

    def eager():
        # A plain loop: autograd on, torch's default thread count.
        def score(x):
            return model(torch.from_numpy(x)).detach().numpy()
        return (with_threads(default_threads, batched(score, SMALL_BATCH)),
                f"default threads={default_threads}")

    def inference_mode():
        def score(x):
            with torch.inference_mode():
                return model(torch.from_numpy(x)).numpy()
        return with_threads(cores, batched(score, BIG_BATCH)), f"threads={cores}"

    def torchscript():
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(model, example)

        def score(x):
            with torch.inference_mode():
                return traced(torch.from_numpy(x)).numpy()
        return with_threads(cores, batched(score, BIG_BATCH)), f"threads={cores}"

    def onnx_export(dynamo: bool):
        def setup():
            path = work / f"torch_mlp_dynamo_{dynamo}.onnx"
            with warnings.catch_warnings():  # dynamo=False: DeprecationWarning
                warnings.simplefilter("ignore")
                if dynamo:  # needs onnxscript
                    program = torch.onnx.export(
                        model, (example[:8],), input_names=["x"], output_names=["p"],
                        dynamic_shapes=({0: torch.export.Dim("n")},), verbose=False)
                    program.save(str(path))
                else:
                    torch.onnx.export(model, (example[:8],), str(path), dynamo=False,
                                      input_names=["x"], output_names=["p"],
                                      dynamic_axes={"x": {0: "n"}, "p": {0: "n"}})
            import onnx

            opset = onnx.load(str(path)).opset_import[0].version
            return ort_scorer(path, cores), f"opset {opset}"
        return setup

    return [("torch eager", SMALL_BATCH, eager),
            ("torch inference_mode", BIG_BATCH, inference_mode),
            ("TorchScript (jit.trace)", BIG_BATCH, torchscript),
            ("ORT <- torch.onnx (dynamo)", BIG_BATCH, onnx_export(dynamo=True)),
            ("ORT <- torch.onnx (legacy)", BIG_BATCH, onnx_export(dynamo=False))]


# -- ONNX Runtime ----------------------------------------------------------------------

def ort_scorer(path: Path | bytes, cores: int) -> Scorer:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = cores
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(path if isinstance(path, bytes) else str(path), options,
                                   providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def score(x):
        return session.run(None, {name: x})[0]
    return batched(score, BIG_BATCH)


# -- TensorFlow / Keras ----------------------------------------------------------------

def tf_paths(weights: Weights, cores: int) -> list[tuple[str, int, Callable]]:
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(cores)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras

    model = keras.Sequential([keras.Input((FEATURES,), dtype="float32"),
                              keras.layers.Dense(HIDDEN, activation="relu"),
                              keras.layers.Dense(HIDDEN, activation="relu"),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.set_weights(weights)
    signature = [tf.TensorSpec([None, FEATURES], tf.float32, name="x")]

    def predict():
        def score(x):
            return model.predict(x, batch_size=BIG_BATCH, verbose=0)
        return score, f"keras {keras.__version__}"  # predict batches itself

    def function(jit: bool):
        def setup():
            fn = tf.function(lambda x: model(x, training=False), input_signature=signature,
                             jit_compile=jit)

            def score(x):
                return fn(tf.constant(x)).numpy()
            return batched(score, BIG_BATCH), "jit_compile=True" if jit else ""
        return setup

    def tf2onnx_ort():
        import tf2onnx

        errors = []
        for how in ("from_keras", "from_function"):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    if how == "from_keras":
                        proto, _ = tf2onnx.convert.from_keras(model, input_signature=signature)
                    else:
                        fn = tf.function(lambda x: model(x, training=False))
                        proto, _ = tf2onnx.convert.from_function(fn, input_signature=signature)
            except Exception as exc:
                errors.append(f"{how}: {type(exc).__name__}: {str(exc).splitlines()[0][:80]}"
                              if str(exc) else f"{how}: {type(exc).__name__}")
                continue
            note = f"tf2onnx {tf2onnx.__version__} {how}, opset {proto.opset_import[0].version}"
            if errors:
                note += f" ({'; '.join(errors)})"
            return ort_scorer(proto.SerializeToString(), cores), note
        raise RuntimeError("; ".join(errors))

    return [("Keras model.predict", BIG_BATCH, predict),
            ("tf.function", BIG_BATCH, function(jit=False)),
            ("tf.function (XLA)", BIG_BATCH, function(jit=True)),
            ("ORT <- tf2onnx(Keras)", BIG_BATCH, tf2onnx_ort)]


# -- running ---------------------------------------------------------------------------

def prepare(name: str, batch: int, setup: Callable, x: np.ndarray) -> tuple[Result, Scorer | None]:
    """Build the path and score one warm-up batch (tracing, graph building, allocation)."""
    result = Result(name, batch)
    started = time.perf_counter()
    try:
        score, result.note = setup()
        score(x[:min(len(x), batch)])
    except Exception as exc:
        result.note = f"unavailable: {type(exc).__name__}: {str(exc)[:300]}"
        if os.environ.get("DL_PROBE_DEBUG"):
            traceback.print_exc()
        return result, None
    result.setup = time.perf_counter() - started
    return result, score


def measure(ready: list[tuple[Result, Scorer]], x: np.ndarray, repeats: int) -> list[np.ndarray]:
    """Repeats interleaved across paths, so machine noise hits all of them alike."""
    times: list[list[float]] = [[] for _ in ready]
    predictions: list[np.ndarray] = []
    for repeat in range(repeats):
        for i, (result, score) in enumerate(ready):
            started = time.perf_counter()
            out = np.asarray(score(x), dtype=np.float32).reshape(-1)
            times[i].append(time.perf_counter() - started)
            if repeat == 0:
                predictions.append(out)
            time.sleep(0.25)  # let this path's spinning worker threads (OpenMP, ORT) go idle
            print(f"  {result.name}: {times[i][-1]:.3f} s", file=sys.stderr, flush=True)
    for (result, _), seconds in zip(ready, times, strict=True):
        result.seconds = min(seconds)
    return predictions


def environment_lines(cores: int) -> list[str]:
    lines = [f"python {sys.version.split()[0]}, numpy {np.__version__}, cores used {cores} "
             f"(os.cpu_count {os.cpu_count()})"]
    for module in ("torch", "tensorflow", "onnxruntime", "onnx", "tf2onnx"):
        if module in sys.modules:
            mod = sys.modules[module]
            extra = f" (cuda {mod.version.cuda})" if module == "torch" else ""
            lines.append(f"{module} {mod.__version__}{extra}")
    return lines


def render(results: list[Result], rows: int, tolerance: float) -> str:
    base = next((r.seconds for r in results if r.name == "torch eager" and r.seconds), None)
    header = (f"{'path':26s} {'batch':>7s} {'seconds':>8s} {'rows/s':>12s} {'vs eager':>8s} "
              f"{'setup s':>8s} {'max|diff|':>9s} {'vs f64':>8s}  note")
    lines = [header, "-" * len(header)]
    for r in results:
        if r.seconds is None:
            lines.append(f"{r.name:26s} {r.batch:7,d} {'-':>8s} {'-':>12s} {'-':>8s} "
                         f"{'-':>8s} {'-':>9s} {'-':>8s}  {r.note}")
            continue
        speed = f"{base / r.seconds:7.2f}x" if base else "-"
        diff = "-" if r.max_abs_diff is None else f"{r.max_abs_diff:9.1e}"
        flag = " MISMATCH" if r.max_abs_diff is not None and r.max_abs_diff > tolerance else ""
        lines.append(f"{r.name:26s} {r.batch:7,d} {r.seconds:8.3f} {rows / r.seconds:12,.0f} "
                     f"{speed:>8s} {r.setup:8.2f} {diff} {r.f64_diff:8.1e}{flag}  {r.note}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.dl_probe",
                                     description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows to score")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per path; best counts")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1,
                        help="threads for the paths that set them (default: all cores)")
    parser.add_argument("--tolerance", type=float, default=1e-5,
                        help="largest absolute difference from torch eager accepted")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip", default="", help="comma-separated: torch,tensorflow")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    weights = make_weights(args.seed)
    x = np.random.default_rng(args.seed + 1).standard_normal((args.rows, FEATURES),
                                                              dtype=np.float32)
    paths: list[tuple[str, int, Callable]] = []
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="dl_probe_") as tmp:
        for framework, build in (("torch", lambda: torch_paths(weights, args.cores, Path(tmp))),
                                 ("tensorflow", lambda: tf_paths(weights, args.cores))):
            if framework in skip:
                continue
            try:
                paths += build()
            except ImportError as exc:
                results.append(Result(framework, 0, note=f"not installed: {exc}"))
        ready = []
        for name, batch, setup in paths:
            result, score = prepare(name, batch, setup, x)
            results.append(result)
            if score is None:
                print(f"  {name}: {result.note}", file=sys.stderr, flush=True)
            else:
                ready.append((result, score))
        predictions = measure(ready, x, args.repeats)
    exact = numpy_float64(weights, x)
    for (result, _), out in zip(ready, predictions, strict=True):
        result.max_abs_diff = float(np.max(np.abs(out - predictions[0])))
        result.f64_diff = float(np.max(np.abs(out - exact)))
    print("\n".join(environment_lines(args.cores)))
    print(f"{args.rows:,} rows x {FEATURES} float32 features, MLP {FEATURES}->{HIDDEN}->"
          f"{HIDDEN}->1, best of {args.repeats}; max|diff| vs the first path "
          f"(torch eager unless skipped), tolerance {args.tolerance:g}; vs f64: max|diff| "
          "from the same network in numpy float64")
    print(render(results, args.rows, args.tolerance))
    mismatched = [r.name for r in results
                  if r.max_abs_diff is not None and r.max_abs_diff > args.tolerance]
    if mismatched:
        print(f"predictions disagree beyond {args.tolerance:g}: {', '.join(mismatched)}")
    return 1 if mismatched else 0


if __name__ == "__main__":
    sys.exit(main())
