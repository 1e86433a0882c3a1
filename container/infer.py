"""The ``infer`` entrypoint: score this instance's shard of Parquet files with one
model, or with every model of a ``ScoringPlan`` in one pass.

It checks every file's footer against each model before any compute (a bad file
fails the job in seconds, naming the file and column), loads each model once, and
hands the files to the scoring pipeline (``container.scoring``): row groups on one
thread per core, only the columns the model needs read, keys + passthrough +
prediction columns written per file to scratch, renamed into place, and the file's
manifest written last.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from threadpoolctl import threadpool_limits

import container
from container.atomic import write_json_atomically
from container.contract import (
    CONFIG_INPUT,
    DATA_INPUT,
    FAILURES_DIR,
    MODEL_INPUT,
    PREDICTIONS_OUTPUT,
    SCORING_PLAN_FILE,
    FileManifest,
    InferArguments,
    ModelFailure,
    ModelMetadata,
    ScoringPlan,
)
from container.environment import ProcessingEnvironment, available_cpus
from container.errors import JobInputError
from container.frameworks import load_model
from container.model_bundle import read_metadata
from container.parallelism import plan_parallelism
from container.prediction_columns import checked_predictions
from container.schema_check import check_columns
from container.scored_files import InputFile, OpenedFile, ScoredModel
from container.scoring import Progress, ScoringPipeline, first_batch, open_inputs

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
    """Score every file of this instance's shard with every model of the job; returns
    the manifests written. Models that failed are named in the error raised at the
    end, after the other models' outputs are published."""
    options = arguments.resolved()
    inputs, outputs = env.channels((DATA_INPUT, MODEL_INPUT), (PREDICTIONS_OUTPUT,))
    host = env.current_host()
    job_name = env.job_config().get("ProcessingJobName", "")
    planned = _planned_models(env, inputs[MODEL_INPUT], outputs[PREDICTIONS_OUTPUT], options)
    files = find_input_files(inputs[DATA_INPUT])
    opened = open_inputs(files)  # every footer before any compute
    total_rows = sum(o.rows for o in opened)
    plan = plan_parallelism(available_cpus(), sum(o.row_groups for o in opened),
                            options.workers, options.threads_per_worker)
    models = [_load(entry, host, job_name, plan.threads_per_worker, opened)
              for entry in planned]
    if not files:
        log.info("%s: no input files in this shard; nothing to do", host)
        _raise_failures(models, [], host, job_name, env.scratch_dir)
        return []
    log.info("%s: %d files, %d rows, %d model(s), %d worker threads x %d native threads",
             host, len(files), total_rows, len(models), plan.workers,
             plan.threads_per_worker)
    pipeline = ScoringPipeline([m for m in models if m.failure is None], plan.workers,
                               options.batch_rows, env.scratch_dir)
    started = time.monotonic()
    with threadpool_limits(plan.threads_per_worker):  # BLAS under scikit-learn models
        manifests = pipeline.run(opened, Progress(host, len(files), total_rows, started))
    elapsed = time.monotonic() - started
    log.info("%s: scored %d rows in %.2f s (%.0f rows/s) after %.2f s of start-up", host,
             total_rows, elapsed, total_rows / max(elapsed, 1e-9),
             started - container.IMPORTED_AT)
    _raise_failures(models, manifests, host, job_name, env.scratch_dir)
    return manifests


@dataclass(frozen=True)
class _Planned:
    bundle_dir: Path
    output_root: Path
    files: frozenset[str] | None
    predictor: str


def _planned_models(env: ProcessingEnvironment, model_dir: Path, output_dir: Path,
                    options: InferArguments) -> list[_Planned]:
    """The job's models: the scoring plan's (``scoring.json`` in the config input), or
    the one bundle at the model input's root."""
    config = env.inputs().get(CONFIG_INPUT)
    plan_path = config.local_path / SCORING_PLAN_FILE if config else None
    if plan_path is None or not plan_path.is_file():
        return [_Planned(model_dir, output_dir, None, options.predictor or "auto")]
    try:
        plan = ScoringPlan.from_dict(json.loads(plan_path.read_text()))
    except ValueError as exc:
        raise JobInputError(f"scoring plan {plan_path} is invalid: {exc}") from exc
    return [_Planned(model_dir / entry.bundle, output_dir / entry.output,
                     frozenset(entry.files) if entry.files is not None else None,
                     entry.predictor or options.predictor or "auto")
            for entry in plan.models]


def _load(entry: _Planned, host: str, job_name: str, threads: int,
          opened: list[OpenedFile]) -> ScoredModel:
    """Read, load and verify one model; a failure is recorded on the model (the job's
    other models go on) instead of raised."""
    metadata = None
    try:
        metadata = read_metadata(entry.bundle_dir)
        rows = sum(o.rows for o in opened
                   if entry.files is None or o.file.relative in entry.files)
        model = load_model(metadata, entry.bundle_dir, threads, entry.predictor, rows)
        # each output records the predictor paths that scored its rows (``predictor``)
        scored = ScoredModel(metadata, model, entry.output_root, {
            "model_name": metadata.name, "model_version": metadata.version, "host": host,
            "job_name": job_name,
        }, entry.files)
        mine = [o for o in opened if scored.scores(o.file.relative)]
        accepted: set[int] = set()  # each schema object checked once (files share them)
        for item in mine:  # every schema before any compute
            if id(item.input_schema) not in accepted:
                check_columns(item.input_schema, item.file.relative, metadata)
                accepted.add(id(item.input_schema))
        first = first_batch(mine, metadata.input_columns)
        checked = "no rows to check"
        if first is not None:
            where = f"the first {first[0].num_rows:,} rows of input file {first[1]}"
            sample = scored.inputs.prepare(first[0], where)  # as every batch is
            checked = model.verify_fast_path(sample)
            # a model that does not fit its task fails here, before any output exists
            checked_predictions(model.predict(sample), metadata, sample.num_rows, where)
        log.info("%s: model %s version %s: %d files, predictor %s (%s)", host, metadata.name,
                 metadata.version, len(mine), model.predictor_name, checked)
        return scored
    except Exception as exc:  # recorded on the model; raised at the end of the job
        name = metadata.name if metadata else entry.bundle_dir.name
        placeholder = metadata or ModelMetadata(name=name, version="?", framework="?",
                                                features=[], key_columns=[], artifact="")
        failed = ScoredModel(placeholder, None, entry.output_root, {}, entry.files)
        failed.fail(exc, "to load")
        return failed


def _raise_failures(models: list[ScoredModel], manifests: list[FileManifest],
                    host: str = "", job_name: str = "", scratch: Path | None = None) -> None:
    """Report the models that failed, after the others' outputs are published.

    While at least one model of the job works, each failed model gets a
    ``ModelFailure`` record in its output folder and the job completes: SageMaker
    stops every instance of a job when one fails, which would cost the working
    models the files other instances were still scoring. When every model failed,
    the job fails, naming each one: a JobInputError (bad input, not retried) when
    every failure is one.
    """
    failed = [m for m in models if m.failure is not None]
    if not failed:
        return
    if len(failed) < len(models) and scratch is not None:
        for model in failed:
            record = ModelFailure(model=model.name, host=host, job_name=job_name,
                                  message=str(model.failure)[:2000],
                                  bad_input=isinstance(model.failure, JobInputError))
            write_json_atomically(record.to_dict(),
                                  model.output_root / FAILURES_DIR / f"{host}.json", scratch)
        log.error("%s: %d of %d models failed (recorded under their outputs' %s/); the "
                  "others' outputs are complete", host, len(failed), len(models), FAILURES_DIR)
        return
    done = len({m.model_name for m in manifests})
    if len(models) == 1:  # its errors name the model already
        message = str(failed[0].failure)
    else:
        message = "; ".join(f"model {m.name}: {m.failure}" for m in failed)
        message += (f" ({len(failed)} of {len(models)} models failed; {done} other model(s) "
                    f"published {len(manifests)} output(s) on this instance)")
    if all(isinstance(m.failure, JobInputError) for m in failed):
        raise JobInputError(message)
    raise ModelsFailedError(message)


class ModelsFailedError(RuntimeError):
    """Models of the job failed for a reason other than bad input."""
