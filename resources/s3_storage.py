"""``S3BucketStorage``: the bucket on Amazon S3 (or any S3-compatible store).

Built on dagster-aws's ``S3Resource`` (credentials, region, endpoint, retries)
and its paginated ``get_objects`` listing; transfers use boto3's managed
transfer, so large files go up and down as parallel multipart transfers.
"""

from __future__ import annotations

import os
from datetime import UTC
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from dagster_aws.s3 import S3Resource
from dagster_aws.s3.sensor import get_objects
from pydantic import Field, PrivateAttr

from resources.storage import ObjectInfo, ObjectStorage

_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}


class S3BucketStorage(ObjectStorage):
    """Objects in one S3 bucket."""

    s3: S3Resource = Field(
        default_factory=S3Resource,
        description="dagster-aws S3 resource: region_name, endpoint_url (for S3-compatible "
        "stores and tests), profile, max_attempts.",
    )
    _client: Any = PrivateAttr(default=None)

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self.s3.get_client()
        return self._client

    def list_objects(self, prefix: str) -> list[ObjectInfo]:
        found = get_objects(self.bucket, prefix, client=self.client)
        return sorted(
            (ObjectInfo(o["Key"], o["Size"], o["LastModified"].astimezone(UTC)) for o in found),
            key=lambda o: o.key,
        )

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response["Error"]["Code"] in _NOT_FOUND:
                return False
            raise
        return True

    def read_bytes(self, key: str) -> bytes:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if exc.response["Error"]["Code"] in _NOT_FOUND:
                raise FileNotFoundError(f"no object {self.uri(key)}") from exc
            raise

    def read_tail(self, key: str, size: int) -> bytes:
        response = self.client.get_object(Bucket=self.bucket, Key=key, Range=f"bytes=-{size}")
        return response["Body"].read()

    def write_bytes(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data)

    def download_file(self, key: str, destination: Path) -> None:
        """Download to a temporary name, then rename: a partial file is never visible."""
        destination.parent.mkdir(parents=True, exist_ok=True)
        temp = destination.parent / f".{destination.name}.tmp-{os.getpid()}"
        try:
            self.client.download_file(self.bucket, key, str(temp))
            os.replace(temp, destination)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise

    def upload_file(self, source: Path, key: str) -> None:
        self.client.upload_file(str(source), self.bucket, key)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=key)

    def spec(self) -> dict:
        """Settings for the local runner's supervisor, without secrets: it takes
        credentials from the environment it inherits, never from a file on disk."""
        spec = super().spec()
        for secret in ("aws_access_key_id", "aws_secret_access_key", "aws_session_token"):
            spec["config"]["s3"][secret] = None
        return spec
