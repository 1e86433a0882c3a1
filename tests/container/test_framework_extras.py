"""CI exercises every framework module: the optional extras must be installed there.

The framework tests skip when their library is missing (a lean developer install);
in CI (``CI`` set, as `.ci/run` runs) a missing library fails here instead of
letting those tests skip silently.
"""

from __future__ import annotations

import importlib
import os

import pytest

EXTRAS = ("lightgbm", "onnx", "onnxruntime", "skl2onnx", "torch", "tensorflow", "tf2onnx")


@pytest.mark.skipif(not os.environ.get("CI"), reason="only CI must have every extra")
@pytest.mark.parametrize("module", EXTRAS)
def test_every_framework_library_is_installed_in_ci(module):
    importlib.import_module(module)
