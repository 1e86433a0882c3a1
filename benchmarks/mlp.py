"""The network workloads' model (W4, W5): one tabular MLP, in PyTorch and in Keras.

``features -> hidden -> hidden -> 1`` (ReLU, sigmoid output: P(positive)), trained
briefly with PyTorch on the benchmark's labels, then saved with the same weights as
a TorchScript module (W4) and as a Keras ``.keras`` model (W5). Their ONNX exports
(for the engine and the ONNX Runtime baseline) are made by the engine's own import
step (``container.predictors.verified_export``), in ``benchmarks.workloads``.

Weights are kept in the Keras layout: ``[W1 (in, out), b1, W2, b2, W3, b3]``.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

TRAIN_BATCH = 512
LEARNING_RATE = 1e-3

Weights = list[np.ndarray]


def torch_network(features: int, hidden: int):
    import torch

    return torch.nn.Sequential(
        torch.nn.Linear(features, hidden), torch.nn.ReLU(),
        torch.nn.Linear(hidden, hidden), torch.nn.ReLU(),
        torch.nn.Linear(hidden, 1), torch.nn.Sigmoid())


def train_weights(block: np.ndarray, label: np.ndarray, hidden: int, epochs: int) -> Weights:
    """A few epochs of Adam on binary cross-entropy; deterministic for a given machine."""
    import torch

    torch.manual_seed(0)
    network = torch_network(block.shape[1], hidden)
    optimizer = torch.optim.Adam(network.parameters(), lr=LEARNING_RATE)
    loss = torch.nn.BCELoss()
    x = torch.from_numpy(np.ascontiguousarray(block, np.float32))
    y = torch.from_numpy(label.astype(np.float32)).reshape(-1, 1)
    generator = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), TRAIN_BATCH):
            picked = order[start:start + TRAIN_BATCH]
            optimizer.zero_grad()
            loss(network(x[picked]), y[picked]).backward()
            optimizer.step()
    linears = [m for m in network if isinstance(m, torch.nn.Linear)]
    weights: Weights = []
    for linear in linears:
        weights.append(linear.weight.detach().numpy().T.copy())
        weights.append(linear.bias.detach().numpy().copy())
    return weights


def save_weights(weights: Weights, path: Path) -> None:
    np.savez(path, *weights)


def load_weights(path: Path) -> Weights:
    with np.load(path) as stored:
        return [stored[f"arr_{i}"] for i in range(len(stored.files))]


def save_torchscript(weights: Weights, path: Path) -> None:
    """The network as a TorchScript archive (``torch.jit.save`` of a traced module),
    the format the engine's torch module reads."""
    import torch

    network = torch_network(weights[0].shape[0], weights[0].shape[1]).eval()
    linears = [m for m in network if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        for linear, w, b in zip(linears, weights[0::2], weights[1::2], strict=True):
            linear.weight.copy_(torch.from_numpy(w.T.copy()))
            linear.bias.copy_(torch.from_numpy(b))
    with warnings.catch_warnings():  # torch.jit is deprecated in 2.13
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(network, torch.zeros(8, weights[0].shape[0]))
        torch.jit.save(traced, str(path))


def keras_network(weights: Weights):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    hidden = weights[0].shape[1]
    model = keras.Sequential([keras.Input((weights[0].shape[0],), dtype="float32"),
                              keras.layers.Dense(hidden, activation="relu"),
                              keras.layers.Dense(hidden, activation="relu"),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.set_weights(weights)
    return model


def save_keras(weights: Weights, path: Path) -> None:
    keras_network(weights).save(str(path))
