"""Object storage resource: the bucket that holds data, models, predictions, manifests.

``ObjectStorage`` is what assets, checks and sensors receive; it configures a
``Bucket`` (``resources/buckets.py``) and hands every operation to it.
``LocalBucketStorage`` is the embedded default: a local directory acting as one
bucket, so every path the pipeline writes is also a valid ``s3://`` URI.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import ConfigDict, Field, PrivateAttr

from resources.buckets import Bucket, LocalBucket, ObjectInfo

__all__ = ["LocalBucketStorage", "ObjectInfo", "ObjectStorage"]


class ObjectStorage(dg.ConfigurableResource):
    """A configured bucket; subclasses say which kind (local directory, S3)."""

    model_config = ConfigDict(extra="forbid")  # a misspelt setting is refused by name

    bucket: str = Field(default="local-bucket", description="Bucket name used in s3:// URIs.")
    _opened: Bucket | None = PrivateAttr(default=None)

    def open_bucket(self) -> Bucket:
        raise NotImplementedError(f"{type(self).__name__} must say which bucket it opens")

    @property
    def _bucket(self) -> Bucket:
        """One Bucket per resource object, so clients are reused across calls."""
        if self._opened is None:
            self._opened = self.open_bucket()
        return self._opened

    def uri(self, key: str) -> str:
        return self._bucket.uri(key)

    def key_of(self, uri: str) -> str:
        return self._bucket.key_of(uri)

    def list_objects(self, prefix: str) -> list[ObjectInfo]:
        return self._bucket.list_objects(prefix)

    def exists(self, key: str) -> bool:
        return self._bucket.exists(key)

    def read_bytes(self, key: str) -> bytes:
        return self._bucket.read_bytes(key)

    def write_bytes(self, key: str, data: bytes) -> None:
        self._bucket.write_bytes(key, data)

    def read_json(self, key: str) -> dict:
        return self._bucket.read_json(key)

    def write_json(self, key: str, data: dict) -> None:
        self._bucket.write_json(key, data)

    def read_tail(self, key: str, size: int) -> bytes:
        """The last ``size`` bytes of an object (a Parquet footer without the file)."""
        return self._bucket.read_tail(key, size)

    def download_file(self, key: str, destination: Path) -> None:
        self._bucket.download_file(key, destination)

    def upload_file(self, source: Path, key: str) -> None:
        self._bucket.upload_file(source, key)

    def delete(self, key: str) -> None:
        self._bucket.delete(key)

    def spec(self) -> dict:
        """Settings another process uses to open the same bucket (no secrets)."""
        return self._bucket.spec()

    def bucket_named(self, name: str) -> Bucket | None:
        """The bucket called ``name`` for reading: this one, another one this storage can
        reach (S3: with the same client and credentials), or ``None``."""
        return self._bucket if name == self.bucket else self.open_other_bucket(name)

    def open_other_bucket(self, name: str) -> Bucket | None:
        return None  # a local folder is one bucket only


class LocalBucketStorage(ObjectStorage):
    """A local directory acting as the bucket (the embedded default)."""

    root: str = Field(
        default=".data/bucket",
        description="Directory that holds the bucket's objects; relative paths are "
        "relative to the working directory of the Dagster process.",
    )

    @property
    def root_path(self) -> Path:
        return Path(self.root).resolve()

    def open_bucket(self) -> Bucket:
        return LocalBucket(self.root, self.bucket)
