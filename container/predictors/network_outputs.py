"""What a neural network's output means, and turning it into the engine's shape per task.

A TorchScript module or a Keras/TensorFlow model returns a float tensor, and nothing
in the artifact says whether a classifier's last layer is a probability (sigmoid or
softmax inside the model) or a logit (the activation left to the loss, as with
``BCEWithLogitsLoss``/``from_logits=True``). The convention:

* ``network_output = "probability"`` (the default): a binary model returns P(positive) as
  (n, 1) or (n,), or both classes' probabilities as (n, 2) (column 1 is the
  positive class); a multiclass model returns (n, k) probabilities in the order of
  ``ModelMetadata.class_labels``.
* ``network_output = "logit"``: the same shapes before the activation; the engine applies
  the sigmoid (one column) or the softmax (two or more columns), in float64.

The flag is ``ModelMetadata.network_output`` (the registry's ``[models.output]
network_output``), ``"probability"`` when empty (bundles written before it
existed). Because a wrong convention would silently score logits as probabilities,
every batch of a model declared ``probability`` is checked: a value outside [0, 1]
or a multiclass row that does not sum to 1 fails the job with a message that names
the artifact and both fixes. Regression models return the value
(n, 1) or (n,) and the flag does not apply.
"""

from __future__ import annotations

import numpy as np

from container.contract import ModelMetadata
from container.errors import JobInputError

OUTPUT_KINDS = ("probability", "logit")
DEFAULT_OUTPUT = "probability"
# float32 probabilities from a sigmoid/softmax are within a few units in the last
# place of [0, 1] and of summing to 1
PROBABILITY_SLACK = 1e-5
ROW_SUM_SLACK = 1e-3


def declared_output(metadata: ModelMetadata, artifact: str) -> str:
    """The model's output convention (``OUTPUT_KINDS``), default ``probability``."""
    output = metadata.network_output or DEFAULT_OUTPUT
    if output not in OUTPUT_KINDS:
        raise JobInputError(
            f"model {metadata.name!r} ({artifact}): network_output {output!r} is not one "
            f"of {', '.join(OUTPUT_KINDS)}; fix [models.output] network_output in the "
            "registry and re-import")
    return output


def _sigmoid(values: np.ndarray) -> np.ndarray:
    from scipy.special import expit

    return expit(values)


def _softmax(values: np.ndarray) -> np.ndarray:
    from scipy.special import softmax

    return softmax(values, axis=1)


def task_values(raw: object, task: str, output: str, artifact: str) -> np.ndarray:
    """``raw`` network output as float64 in the engine's shape for ``task``: (n,) for
    binary and regression, (n, k) for multiclass. Shapes that fit no task are returned
    as they are, so the engine's shape check reports the model's actual shape."""
    values = np.asarray(raw, dtype=np.float64)
    if values.ndim == 2 and values.shape[1] == 1 and task != "multiclass":
        values = values[:, 0]
    if task == "regression" or values.ndim not in (1, 2):
        return values
    if output == "logit":
        values = _sigmoid(values) if values.ndim == 1 else _softmax(values)
    else:
        check_probabilities(values, artifact)
    if task == "binary" and values.ndim == 2 and values.shape[1] == 2:
        return values[:, 1]
    return values


def check_probabilities(values: np.ndarray, artifact: str) -> None:
    """JobInputError when ``values`` cannot be probabilities (the model returns logits
    or scores while declared ``network_output = "probability"``)."""
    known = values[~np.isnan(values)]
    if known.size == 0:
        return
    low, high = float(known.min()), float(known.max())
    problem = None
    if low < -PROBABILITY_SLACK or high > 1 + PROBABILITY_SLACK:
        problem = f"values outside [0, 1] (from {low:.4g} to {high:.4g})"
    elif values.ndim == 2 and values.shape[1] > 1:
        sums = values.sum(axis=1)
        off = np.abs(sums[~np.isnan(sums)] - 1.0)
        if off.size and float(off.max()) > ROW_SUM_SLACK:
            worst = float(sums[~np.isnan(sums)][np.argmax(off)])
            problem = f"rows whose probabilities do not sum to 1 (one sums to {worst:.4g})"
    if problem is not None:
        raise JobInputError(
            f"model artifact {artifact} returned {problem}, so its output is not a "
            "probability: it looks like logits or scores. End the model with a sigmoid "
            "(binary) or softmax (multiclass), or declare network_output = \"logit\" in the "
            "model's [models.output] table of the registry (then re-import) so the engine "
            "applies it.")
