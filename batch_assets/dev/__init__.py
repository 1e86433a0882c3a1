"""For a person trying the pipeline on one machine: the demo (``python -m
batch_assets.dev.demo``), its data generator, and the ``dagster dev`` launcher."""
