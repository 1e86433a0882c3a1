"""Code that runs inside a SageMaker Processing job (or a local stand-in instance).

This package imports nothing of Dagster or of the orchestration packages: it is
installed alone in a slim image. Entrypoints: ``python -m container train`` and
``python -m container infer``.
"""

import time

# When the container's code started to load: each job logs its start-up (imports,
# model load, checks) apart from its scoring time.
IMPORTED_AT = time.monotonic()
