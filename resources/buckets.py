"""Buckets: the object operations the pipeline needs, without Dagster.

``LocalBucket`` is a directory acting as a bucket; ``S3Bucket`` is an S3 bucket
behind a boto3 client. The Dagster resources in ``storage.py`` and
``s3_storage.py`` configure these; the local runner's supervisor rebuilds one
from ``Bucket.spec()`` without importing Dagster, which keeps each job's start
fast.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from resources.s3_uri import parse_s3_uri, s3_uri


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    last_modified: datetime


class Bucket:
    """Operations on one bucket; keys are relative to it."""

    def __init__(self, name: str) -> None:
        self.name = name

    def uri(self, key: str) -> str:
        return s3_uri(self.name, key)

    def key_of(self, uri: str) -> str:
        """Key of an ``s3://`` URI in this bucket; raises ValueError for another bucket."""
        bucket, key = parse_s3_uri(uri)
        if bucket != self.name:
            raise ValueError(f"{uri} is not in bucket {self.name!r}")
        return key

    def read_json(self, key: str) -> dict:
        return json.loads(self.read_bytes(key))

    def write_json(self, key: str, data: dict) -> None:
        self.write_bytes(key, json.dumps(data, indent=2, sort_keys=True).encode())

    # implemented by each kind of bucket
    def list_objects(self, prefix: str) -> list[ObjectInfo]: ...
    def exists(self, key: str) -> bool: ...
    def read_bytes(self, key: str) -> bytes: ...
    def write_bytes(self, key: str, data: bytes) -> None: ...
    def read_tail(self, key: str, size: int) -> bytes: ...
    def download_file(self, key: str, destination: Path) -> None: ...
    def upload_file(self, source: Path, key: str) -> None: ...
    def delete(self, key: str) -> None: ...
    def spec(self) -> dict: ...


class LocalBucket(Bucket):
    """A directory acting as a bucket. Writes are atomic (temp name, then rename) and
    files are hard-linked rather than copied where the file system allows."""

    def __init__(self, root: Path | str, name: str) -> None:
        super().__init__(name)
        self.root = Path(root).resolve()

    def path_of(self, key: str) -> Path:
        """Local file of a key; rejects keys that would escape the bucket directory."""
        if not key or key.startswith("/") or ".." in Path(key).parts:
            raise ValueError(f"invalid object key {key!r}")
        return self.root / key

    def list_objects(self, prefix: str) -> list[ObjectInfo]:
        base = self.root / prefix
        start = base if base.is_dir() else base.parent
        if not start.is_dir():
            return []
        # keys by string operations, not a Path per file: a day of 3,000 inputs has
        # 6,000 prediction objects, and the tally lists them on every run
        root_text = str(self.root) + os.sep
        found = []
        for dirpath, _dirs, files in os.walk(start):
            folder = dirpath[len(root_text):].replace(os.sep, "/")
            for name in files:
                key = f"{folder}/{name}" if folder else name
                if not key.startswith(prefix) or _is_temp_name(name):
                    continue
                try:
                    stat = os.stat(os.path.join(dirpath, name))
                except FileNotFoundError:  # deleted (or renamed away) since the walk
                    continue
                found.append(ObjectInfo(key, stat.st_size,
                                        datetime.fromtimestamp(stat.st_mtime, tz=UTC)))
        return sorted(found, key=lambda o: o.key)

    def exists(self, key: str) -> bool:
        return self.path_of(key).is_file()

    def read_bytes(self, key: str) -> bytes:
        path = self.path_of(key)
        try:
            return path.read_bytes()
        except FileNotFoundError as exc:
            raise FileNotFoundError(f"no object {self.uri(key)} (file {path})") from exc

    def write_bytes(self, key: str, data: bytes) -> None:
        target = self.path_of(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(temp, target)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise

    def read_tail(self, key: str, size: int) -> bytes:
        with open(self.path_of(key), "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - size))
            return handle.read()

    def download_file(self, key: str, destination: Path) -> None:
        _link_or_copy(self.path_of(key), destination)

    def upload_file(self, source: Path, key: str) -> None:
        _link_or_copy(source, self.path_of(key))

    def delete(self, key: str) -> None:
        self.path_of(key).unlink(missing_ok=True)

    def spec(self) -> dict:
        return {"kind": "local", "root": str(self.root), "name": self.name}


_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}


class S3Bucket(Bucket):
    """An S3 bucket; transfers use boto3's managed (multipart, parallel) transfer."""

    def __init__(self, name: str, client: Any, client_settings: dict | None = None) -> None:
        super().__init__(name)
        self.client = client
        self.client_settings = client_settings or {}

    def list_objects(self, prefix: str) -> list[ObjectInfo]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.name,
                                                                      Prefix=prefix)
        found = [ObjectInfo(o["Key"], o["Size"], o["LastModified"].astimezone(UTC))
                 for page in pages for o in page.get("Contents", [])]
        return sorted(found, key=lambda o: o.key)

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.name, Key=key)
        except ClientError as exc:
            if exc.response["Error"]["Code"] in _NOT_FOUND:
                return False
            raise
        return True

    def read_bytes(self, key: str) -> bytes:
        from botocore.exceptions import ClientError

        try:
            return self.client.get_object(Bucket=self.name, Key=key)["Body"].read()
        except ClientError as exc:
            if exc.response["Error"]["Code"] in _NOT_FOUND:
                raise FileNotFoundError(f"no object {self.uri(key)}") from exc
            raise

    def write_bytes(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.name, Key=key, Body=data)

    def read_tail(self, key: str, size: int) -> bytes:
        response = self.client.get_object(Bucket=self.name, Key=key, Range=f"bytes=-{size}")
        return response["Body"].read()

    def download_file(self, key: str, destination: Path) -> None:
        """Download to a temporary name, then rename: a partial file is never visible."""
        destination.parent.mkdir(parents=True, exist_ok=True)
        temp = destination.parent / f".{destination.name}.tmp-{os.getpid()}"
        try:
            self.client.download_file(self.name, key, str(temp))
            os.replace(temp, destination)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise

    def upload_file(self, source: Path, key: str) -> None:
        self.client.upload_file(str(source), self.name, key)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.name, Key=key)

    def spec(self) -> dict:
        """No secrets: a process rebuilding the bucket takes credentials from its
        environment, never from a file on disk."""
        return {"kind": "s3", "name": self.name, **self.client_settings}


def bucket_from_spec(spec: dict) -> Bucket:
    """Rebuild a bucket from ``Bucket.spec()`` (the local runner's supervisor does)."""
    if spec["kind"] == "local":
        return LocalBucket(spec["root"], spec["name"])
    if spec["kind"] == "s3":
        import boto3
        from botocore.config import Config

        client = boto3.client(
            "s3", region_name=spec.get("region_name"), endpoint_url=spec.get("endpoint_url"),
            config=Config(retries={"mode": "standard",
                                   "max_attempts": spec.get("max_attempts", 5)}),
        )
        return S3Bucket(spec["name"], client)
    raise ValueError(f"unknown bucket kind {spec['kind']!r}")


def _is_temp_name(name: str) -> bool:
    """Names of in-progress writes (``.<name>.tmp-...``), hidden from listings."""
    return name.startswith(".") and ".tmp-" in name


def _link_or_copy(source: Path, destination: Path) -> None:
    """Place ``source`` at ``destination`` atomically: hard link if possible, else copy."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    temp = destination.parent / f".{destination.name}.tmp-{os.getpid()}"
    temp.unlink(missing_ok=True)
    try:
        try:
            os.link(source, temp)
        except OSError:
            shutil.copyfile(source, temp)
        os.replace(temp, destination)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
