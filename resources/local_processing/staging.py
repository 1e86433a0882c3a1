"""Resolve a processing input to (object key, path below LocalPath) pairs."""

from __future__ import annotations

from resources.buckets import Bucket
from resources.local_processing.manifest_file import parse_manifest
from resources.s3_uri import parse_s3_uri


def resolve_input_objects(storage: Bucket, s3_input: dict) -> list[tuple[str, str]]:
    """Objects an ``S3Input`` names, with each one's path relative to its LocalPath."""
    bucket, key = parse_s3_uri(s3_input["S3Uri"])
    _require_bucket(storage, bucket, s3_input["S3Uri"])
    if s3_input["S3DataType"] == "ManifestFile":
        manifest_bucket, prefix, relative_keys = parse_manifest(
            storage.read_bytes(key), s3_input["S3Uri"]
        )
        _require_bucket(storage, manifest_bucket, s3_input["S3Uri"])
        objects = [(prefix + relative, relative) for relative in relative_keys]
        missing = [k for k, _ in objects if not storage.exists(k)]
        if missing:
            raise FileNotFoundError(
                f"manifest {s3_input['S3Uri']} lists {len(missing)} missing object(s), "
                f"first: {storage.uri(missing[0])}"
            )
        return objects
    if s3_input["S3DataType"] != "S3Prefix":
        raise ValueError(f"S3DataType {s3_input['S3DataType']!r} is not supported locally")
    directory = key[: key.rfind("/") + 1]
    return [(o.key, o.key[len(directory) :]) for o in storage.list_objects(key)]


def _require_bucket(storage: Bucket, bucket: str, uri: str) -> None:
    if bucket != storage.name:
        raise ValueError(
            f"{uri} is in bucket {bucket!r}, but the local runner's storage is bucket "
            f"{storage.name!r}"
        )
