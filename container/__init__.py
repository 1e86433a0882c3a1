"""Code that runs inside a SageMaker Processing job (or a local stand-in instance).

This package imports nothing of Dagster or of the orchestration packages: it is
installed alone in a slim image. Entrypoints: ``python -m container train`` and
``python -m container infer``.
"""
