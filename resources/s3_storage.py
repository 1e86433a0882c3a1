"""``S3BucketStorage``: the bucket on Amazon S3 (or any S3-compatible store).

Configured through dagster-aws's ``S3Resource`` (credentials, region, endpoint,
retries), which builds the boto3 client; the operations are ``S3Bucket``'s.
"""

from __future__ import annotations

from dagster_aws.s3 import S3Resource
from pydantic import Field

from resources.buckets import Bucket, S3Bucket
from resources.storage import ObjectStorage


class S3BucketStorage(ObjectStorage):
    """Objects in one S3 bucket."""

    s3: S3Resource = Field(
        default_factory=S3Resource,
        description="dagster-aws S3 resource: region_name, endpoint_url (for S3-compatible "
        "stores and tests), profile, max_attempts.",
    )

    def open_bucket(self) -> Bucket:
        settings = {"region_name": self.s3.region_name, "endpoint_url": self.s3.endpoint_url,
                    "max_attempts": self.s3.max_attempts}
        return S3Bucket(self.bucket, self.s3.get_client(), settings)

    def open_other_bucket(self, name: str) -> Bucket | None:
        """Another bucket through the same client (e.g. a training job's output bucket
        that a model is imported from)."""
        opened = self._bucket
        assert isinstance(opened, S3Bucket)
        return S3Bucket(name, opened.client, opened.client_settings)
