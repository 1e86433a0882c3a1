"""Object storage: the bucket that holds data, models, predictions and manifests.

``ObjectStorage`` is the interface the assets and the local runner use;
``LocalBucketStorage`` is the embedded default: a local directory acting as one
bucket, so every path the pipeline writes is also a valid ``s3://`` URI.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
from pydantic import Field

from resources.s3_uri import parse_s3_uri, s3_uri


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    last_modified: datetime


class ObjectStorage(dg.ConfigurableResource):
    """Interface of a bucket; implementations: local directory (default), S3."""

    bucket: str = Field(default="local-bucket", description="Bucket name used in s3:// URIs.")

    def uri(self, key: str) -> str:
        return s3_uri(self.bucket, key)

    def key_of(self, uri: str) -> str:
        """Key of an ``s3://`` URI in this bucket; raises ValueError for another bucket."""
        bucket, key = parse_s3_uri(uri)
        if bucket != self.bucket:
            raise ValueError(f"{uri} is not in bucket {self.bucket!r}")
        return key

    def list_objects(self, prefix: str) -> list[ObjectInfo]:
        raise NotImplementedError(type(self).__name__)

    def exists(self, key: str) -> bool:
        raise NotImplementedError(type(self).__name__)

    def read_bytes(self, key: str) -> bytes:
        raise NotImplementedError(type(self).__name__)

    def write_bytes(self, key: str, data: bytes) -> None:
        raise NotImplementedError(type(self).__name__)

    def read_tail(self, key: str, size: int) -> bytes:
        """The last ``size`` bytes of an object (a Parquet footer without the file)."""
        raise NotImplementedError(type(self).__name__)

    def download_file(self, key: str, destination: Path) -> None:
        raise NotImplementedError(type(self).__name__)

    def upload_file(self, source: Path, key: str) -> None:
        raise NotImplementedError(type(self).__name__)

    def delete(self, key: str) -> None:
        raise NotImplementedError(type(self).__name__)

    def read_json(self, key: str) -> dict:
        return json.loads(self.read_bytes(key))

    def write_json(self, key: str, data: dict) -> None:
        self.write_bytes(key, json.dumps(data, indent=2, sort_keys=True).encode())

    def spec(self) -> dict:
        """Serializable settings to rebuild this storage in another process."""
        return {"class": f"{type(self).__module__}.{type(self).__qualname__}",
                "config": self.model_dump()}


class LocalBucketStorage(ObjectStorage):
    """A local directory acting as the bucket (the embedded default).

    Writes are atomic (temp file in the same directory, then rename), and files
    are hard-linked rather than copied where the file system allows, so staging
    hundreds of GB for the local runner costs no copy.
    """

    root: str = Field(
        default=".data/bucket",
        description="Directory that holds the bucket's objects; relative paths are "
        "relative to the working directory of the Dagster process.",
    )

    @property
    def root_path(self) -> Path:
        return Path(self.root).resolve()

    def path_of(self, key: str) -> Path:
        """Local file of a key; rejects keys that would escape the bucket directory."""
        if not key or key.startswith("/") or ".." in Path(key).parts:
            raise ValueError(f"invalid object key {key!r}")
        return self.root_path / key

    def list_objects(self, prefix: str) -> list[ObjectInfo]:
        root = self.root_path
        base = root / prefix
        start = base if base.is_dir() else base.parent
        if not start.is_dir():
            return []
        found = []
        for dirpath, _dirs, files in os.walk(start):
            for name in files:
                path = Path(dirpath) / name
                key = path.relative_to(root).as_posix()
                if not key.startswith(prefix) or _is_temp_name(name):
                    continue
                stat = path.stat()
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


def storage_from_spec(spec: dict) -> ObjectStorage:
    """Rebuild a storage resource from ``ObjectStorage.spec()`` (used by the local runner)."""
    module_name, _, class_name = spec["class"].rpartition(".")
    module = __import__(module_name, fromlist=[class_name])
    storage_class = getattr(module, class_name)
    if not (isinstance(storage_class, type) and issubclass(storage_class, ObjectStorage)):
        raise ValueError(f"{spec['class']} is not an ObjectStorage")
    return storage_class(**spec["config"])
