"""Side-by-side benchmarks of the inference engine (``python -m benchmarks``)."""
