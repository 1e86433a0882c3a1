"""SageMaker's input manifest format (``S3DataType=ManifestFile``).

A JSON array whose first element is ``{"prefix": "s3://bucket/dir/"}`` and whose
other elements are keys relative to that prefix. The pipeline uses it to hand a
job exactly the files that still need work; ``ShardedByS3Key`` then shards the
listed objects.
"""

from __future__ import annotations

import json

from resources.s3_uri import parse_s3_uri


def build_manifest(prefix_uri: str, relative_keys: list[str]) -> bytes:
    if not prefix_uri.endswith("/"):
        raise ValueError(f"manifest prefix {prefix_uri!r} must end with '/'")
    if not relative_keys:
        raise ValueError("a manifest must list at least one object")
    return json.dumps([{"prefix": prefix_uri}, *relative_keys], indent=1).encode()


def parse_manifest(data: bytes, source: str) -> tuple[str, str, list[str]]:
    """(bucket, key prefix, relative keys) of a manifest; errors name ``source``."""
    try:
        items = json.loads(data)
    except json.JSONDecodeError as exc:
        raise ValueError(f"manifest {source} is not JSON: {exc}") from exc
    if (
        not isinstance(items, list)
        or not items
        or not isinstance(items[0], dict)
        or "prefix" not in items[0]
        or not all(isinstance(k, str) for k in items[1:])
    ):
        raise ValueError(
            f"manifest {source} must be a JSON array: a {{'prefix': 's3://...'}} object, then keys"
        )
    bucket, prefix = parse_s3_uri(items[0]["prefix"])
    return bucket, prefix, list(items[1:])
