"""Importing an existing model artifact (a registry entry with ``artifact``): find it,
digest it, copy it into the model store and run the import job.

The version of an imported model is ``imp-<artifact digest>-<declaration digest>``:
the head of the SHA-256 of the artifact as delivered (a directory: of its files'
relative paths and contents) and of what the registry declares about it (framework,
task, features, keys, passthrough columns, class labels, model_file, the output and
missing-value policies), because both end up in the bundle. Importing an unchanged
artifact with an unchanged entry finds
that version current and does nothing; a changed artifact or entry makes a new one,
so a published version never changes meaning.

Reading the artifact happens in this process only as bytes (copy, digest): the model
is loaded (pickles run code) inside the processing job alone.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import dagster as dg
from botocore.exceptions import BotoCoreError, ClientError

from batch_assets.jobs.job_requests import JobResources, import_request, job_tags
from batch_assets.jobs.job_runner import JobOutcome, PartitionJobRunner
from batch_assets.planning.layout import (
    current_model_key,
    job_config_prefix,
    job_spec_key,
    model_prefix,
    model_source_prefix,
)
from batch_assets.registry import ModelSpec
from container.contract import METADATA_FILE, ImportSpec
from resources.buckets import Bucket, LocalBucket
from resources.processing import ProcessingBackend
from resources.s3_uri import parse_s3_uri
from resources.storage import ObjectStorage

_CHUNK = 1 << 20


@dataclass(frozen=True)
class StagedArtifact:
    """A private copy of the artifact: one file, or a folder ``tree`` of files."""

    uri: str  # as the registry names it
    path: Path
    sha256: str

    @property
    def files(self) -> list[tuple[str, Path]]:
        """(relative name in the model store, local file) of every file."""
        if self.path.is_file():
            return [(self.path.name, self.path)]
        return [(p.relative_to(self.path).as_posix(), p)
                for p in sorted(self.path.rglob("*")) if p.is_file()]


def _unreachable(spec: ModelSpec, registry_path: Path, problem: str, fix: str) -> dg.Failure:
    return dg.Failure(
        f"model {spec.name!r}: artifact {spec.artifact} is unreachable: {problem}. {fix} "
        f"(artifact in {registry_path}), then materialize trained_model[{spec.name}] again.",
        allow_retries=False)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def artifact_sha256(path: Path) -> str:
    """SHA-256 of a file; of a directory, over its files' relative paths and contents
    in path order (so where the folder lies and file times do not matter)."""
    if path.is_file():
        return file_sha256(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        digest.update(bytes.fromhex(file_sha256(file)))
    return digest.hexdigest()


def _copy_local(source: Path, destination: Path) -> Path:
    """Copy bytes (never hard-link: a model file rewritten in place would otherwise
    change the copy in the model store too)."""
    if source.is_dir():
        shutil.copytree(source, destination / "tree")
        return destination / "tree"
    shutil.copyfile(source, destination / source.name)
    return destination / source.name


def _fetch(bucket: Bucket, key: str, destination: Path) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(bucket, LocalBucket):  # copy, as for local paths: no shared inode
        shutil.copyfile(bucket.path_of(key), destination)
    else:
        bucket.download_file(key, destination)


def _copy_objects(bucket: Bucket, key: str, destination: Path) -> Path | None:
    """The object ``key``, or every object under the prefix ``key/`` (as a folder
    ``tree``), copied into ``destination``; ``None`` when there is neither."""
    if not key.endswith("/") and bucket.exists(key):
        target = destination / PurePosixPath(key).name
        _fetch(bucket, key, target)
        return target
    prefix = key.rstrip("/") + "/"
    objects = bucket.list_objects(prefix)
    if not objects:
        return None
    for info in objects:
        _fetch(bucket, info.key, destination / "tree" / info.key[len(prefix):])
    return destination / "tree"


@contextmanager
def staged_artifact(spec: ModelSpec, storage: ObjectStorage, registry_path: Path
                    ) -> Iterator[StagedArtifact]:
    """The registry's artifact copied into a temporary folder and digested; a
    ``dg.Failure`` (not retried) naming the artifact and the fix when it cannot be read."""
    with tempfile.TemporaryDirectory(prefix=f"import-{spec.name}-") as scratch:
        yield _stage(spec, storage, registry_path, Path(scratch))


def _stage(spec: ModelSpec, storage: ObjectStorage, registry_path: Path,
           scratch: Path) -> StagedArtifact:
    if not spec.artifact.startswith("s3://"):
        source = Path(spec.artifact)
        if not source.exists():
            raise _unreachable(spec, registry_path, "no such file or directory on this host",
                               "Deliver the model file there or fix the path")
        try:
            path = _copy_local(source, scratch)
        except OSError as exc:
            raise _unreachable(spec, registry_path, f"it cannot be read ({exc})",
                               "Make it readable by the Dagster process") from exc
        return StagedArtifact(spec.artifact, path, artifact_sha256(path))
    bucket_name, key = parse_s3_uri(spec.artifact)
    bucket = storage.bucket_named(bucket_name)
    if bucket is None:
        folder = getattr(storage, "root_path", None)
        raise _unreachable(
            spec, registry_path,
            f"this storage reaches only bucket {storage.bucket!r}, not {bucket_name!r}",
            f"Copy the artifact into that bucket{f' (folder {folder})' if folder else ''} "
            f"and name it {storage.uri('...')}, give a local path, or use the S3 storage "
            "(BATCH_INFERENCE_MODE=aws), which reads other buckets")
    try:
        path = _copy_objects(bucket, key, scratch)
    except (ClientError, BotoCoreError, OSError) as exc:
        raise _unreachable(spec, registry_path, f"reading it failed ({exc})",
                           "Grant the Dagster process s3:GetObject and s3:ListBucket on it"
                           ) from exc
    if path is None:
        raise _unreachable(spec, registry_path, "no object and no objects under that prefix",
                           "Upload the model there or fix the URI")
    return StagedArtifact(spec.artifact, path, artifact_sha256(path))


def import_spec(spec: ModelSpec, staged: StagedArtifact) -> ImportSpec:
    """The job's ``spec.json``, with its version set."""
    draft = ImportSpec(
        name=spec.name, version="", framework=spec.framework, task=spec.task,
        features=list(spec.features), key_columns=list(spec.key_columns),
        artifact_uri=staged.uri, source_sha256=staged.sha256, label=spec.label,
        categorical_features=list(spec.categorical_features),
        passthrough_columns=list(spec.passthrough_columns),
        class_labels=list(spec.class_labels), model_file=spec.model_file,
        network_output=spec.network_output, missing_values=spec.missing_values,
        fill_values=dict(spec.fill_values), fill_statistic=spec.fill_statistic,
        nan_predictions=spec.nan_predictions)
    declared = hashlib.sha256(json.dumps(draft.declared(), sort_keys=True).encode()
                              ).hexdigest()
    return ImportSpec(**{**draft.to_dict(), "version": f"imp-{staged.sha256[:12]}-{declared[:6]}"})


def current_version(storage: ObjectStorage, model: str) -> str | None:
    """The version ``current.json`` names, if its bundle is there."""
    key = current_model_key(model)
    if not storage.exists(key):
        return None
    version = storage.read_json(key).get("version")
    return version if storage.exists(model_prefix(model, version) + METADATA_FILE) else None


def store_artifact(spec: ModelSpec, storage: ObjectStorage, staged: StagedArtifact) -> str:
    """Copy the artifact as delivered into the model store; returns its key prefix."""
    source = model_source_prefix(spec.name, staged.sha256)
    for relative, path in staged.files:
        storage.upload_file(path, source + relative)
    return source


def run_import_job(context, spec: ModelSpec, storage: ObjectStorage,
                   runner: PartitionJobRunner, processing: ProcessingBackend,
                   source: str, job_spec: ImportSpec, asset_name: str) -> JobOutcome:
    """One import job reads the stored artifact (``source``) and writes the bundle
    ``models/<model>/<version>/``."""
    if spec.holdout_data and not storage.list_objects(spec.holdout_data):
        raise dg.Failure(
            f"model {spec.name!r}: no holdout data under {storage.uri(spec.holdout_data)} "
            "(its holdout_data in the model registry). Deliver the holdout files, fix the "
            "prefix, or remove holdout_data to import without the quality gate.",
            allow_retries=False)

    def build(job_name: str) -> dict:
        storage.write_json(job_spec_key(job_name), job_spec.to_dict())
        return import_request(
            JobResources(processing, storage).launch(spec.framework), spec, job_name,
            source_uri=storage.uri(source), config_uri=storage.uri(job_config_prefix(job_name)),
            holdout_uri=storage.uri(spec.holdout_data) if spec.holdout_data else None,
            model_uri=storage.uri(model_prefix(spec.name, job_spec.version)),
            tags=job_tags(asset_name, spec.name, context.run.run_id),
        )

    return runner.run_new_attempt(("import", spec.name), build)
