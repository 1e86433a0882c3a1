"""How many rows a neural network is given per call: ``NETWORK_CALL_ROWS``.

The engine's record batches are sized for reading and memory (``DEFAULT_BATCH_ROWS``
= 65,536 rows), but a dense network scores slowest at that size: each layer's
activations (rows x units x 4 bytes: 64 MiB for 65,536 rows of 256 units) no longer
fit in the CPU's caches, so every layer streams them through memory. Measured on
the 2-core development machine with the benchmark's 40-256-256-1 MLP at one thread
per call (the engine's plan when an instance has at least as many row groups as
cores), rows/s over 262,144 rows:

=========  =======  =======  =======  =======  =======  =======
call rows   1,024    2,048    4,096    8,192   16,384   65,536
=========  =======  =======  =======  =======  =======  =======
torch        396k     363k     337k     384k     339k     253k
ONNX RT      605k     596k     552k     495k     454k     463k
=========  =======  =======  =======  =======  =======  =======

(``benchmarks/dl_probe.py`` found the same with two threads: torch eager 1.1 s per
1M rows at 4,096, 2.3 s at 65,536.) ``python -m benchmarks.network_call_rows`` times
a bundle's two paths per call size; on W4/W5's bundles, with other work using most
of the machine (so noisy), torch gave 211k rows/s at 2,048 against 104k at 65,536 and
ONNX Runtime 231k against 134k; Keras's ``tf.function`` was flat within its noise
(218k-349k), so the size is chosen for the paths it helps. Calls of 1k-4k rows are
the fast ones for both paths, and per-call overhead grows below 1k; 2,048 sits in
the middle of that plateau, so a batch is scored in calls of at most 2,048 rows and the results are
concatenated (one extra copy of the predictions, which is small next to the
network's work).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

NETWORK_CALL_ROWS = 2_048


def in_calls(predict: Callable[[np.ndarray], np.ndarray], features: np.ndarray,
             rows: int = NETWORK_CALL_ROWS) -> np.ndarray:
    """``predict(features)`` made in calls of at most ``rows`` rows."""
    if len(features) <= rows:
        return predict(features)
    return np.concatenate([predict(features[start:start + rows])
                           for start in range(0, len(features), rows)])
