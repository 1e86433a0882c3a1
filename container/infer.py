"""The ``infer`` entrypoint: score this instance's shard of Parquet files.

It checks every file's footer against the model before any compute (a bad file
fails the job in seconds, naming the file and column), loads the model once, and
hands the files to the scoring pipeline (``container.scoring``): row groups on one
thread per core, only the columns the model needs read, keys + passthrough +
prediction columns written per file to scratch, renamed into place, and the file's
manifest written last.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from threadpoolctl import threadpool_limits

import container
from container.contract import (
    DATA_INPUT,
    MODEL_INPUT,
    PREDICTIONS_OUTPUT,
    FileManifest,
    InferArguments,
)
from container.environment import ProcessingEnvironment, available_cpus
from container.frameworks import load_model
from container.model_bundle import read_metadata
from container.parallelism import plan_parallelism
from container.prediction_columns import checked_predictions
from container.scoring import (
    InputFile,
    Progress,
    ScoringPipeline,
    first_batch,
    open_input,
)

log = logging.getLogger("container.infer")


def find_input_files(data_dir: Path) -> list[InputFile]:
    """Every ``*.parquet`` file below the data input, in a stable order."""
    if not data_dir.is_dir():
        return []
    return [
        InputFile(path, path.relative_to(data_dir).as_posix())
        for path in sorted(data_dir.rglob("*.parquet"))
        if path.is_file() and not path.name.startswith(".")
    ]


def run_infer(env: ProcessingEnvironment, arguments: InferArguments) -> list[FileManifest]:
    """Score every file of this instance's shard; returns the manifests written."""
    options = arguments.resolved()
    inputs, outputs = env.channels((DATA_INPUT, MODEL_INPUT), (PREDICTIONS_OUTPUT,))
    bundle_dir = inputs[MODEL_INPUT]
    metadata = read_metadata(bundle_dir)
    host = env.current_host()
    files = find_input_files(inputs[DATA_INPUT])
    if not files:
        load_model(metadata, bundle_dir)  # a bad artifact still fails the job
        log.info("%s: no input files in this shard; nothing to do", host)
        return []
    opened = [open_input(f, metadata) for f in files]  # every schema before any compute
    total_rows = sum(o.rows for o in opened)
    plan = plan_parallelism(available_cpus(), sum(o.row_groups for o in opened),
                            options.workers, options.threads_per_worker)
    model = load_model(metadata, bundle_dir, plan.threads_per_worker, options.predictor)
    sample = first_batch(opened, metadata.input_columns)
    checked = "no rows to check"
    if sample is not None:
        checked = model.verify_fast_path(sample)
        # a model that does not fit its task fails here, before any output exists
        checked_predictions(model.predict(sample), metadata, sample.num_rows,
                            "the first rows of the shard")
    log.info(
        "%s: %d files, %d rows, model %s version %s, %d worker threads x %d native threads, "
        "predictor %s (%s)", host, len(files), total_rows, metadata.name, metadata.version,
        plan.workers, plan.threads_per_worker, model.predictor_name, checked,
    )
    pipeline = ScoringPipeline(
        model, metadata, plan.workers, options.batch_rows, outputs[PREDICTIONS_OUTPUT],
        env.scratch_dir,
        manifest_fields={
            "model_name": metadata.name, "model_version": metadata.version, "host": host,
            "predictor": model.predictor_name,
            "job_name": env.job_config().get("ProcessingJobName", ""),
        },
    )
    started = time.monotonic()
    with threadpool_limits(plan.threads_per_worker):  # BLAS under scikit-learn models
        manifests = pipeline.run(opened, Progress(host, len(files), total_rows, started))
    elapsed = time.monotonic() - started
    log.info("%s: scored %d rows in %.2f s (%.0f rows/s) after %.2f s of start-up", host,
             total_rows, elapsed, total_rows / max(elapsed, 1e-9),
             started - container.IMPORTED_AT)
    return manifests
