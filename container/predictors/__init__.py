"""Predictor machinery shared by the framework modules (``container/frameworks/``):
what a loaded model gives the engine (``base``), the checks of an artifact against
its declaration (``declared``), the framework's path beside a faster one proven to
agree (``two_path``, raced for networks in ``fastest``), the fast paths themselves
(oneDAL trees, folded linear maps, ONNX Runtime), a network's ONNX export verified
at import (``verified_export``, scored by ``exported``), and how a network is
called and its output read (``network_calls``, ``network_outputs``). None of it
imports a framework module; the framework modules import it.
"""
