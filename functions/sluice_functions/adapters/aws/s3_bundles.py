"""Bundles in the stack's S3 bucket, moved by presigned URLs: the bytes never pass through
Lambda (whose synchronous payloads stop at 6 MB) or API Gateway."""

from __future__ import annotations

import re
from typing import Any

from botocore.exceptions import ClientError

#: Presigned URLs live long enough for a slow upload of a large bundle, and no longer.
PRESIGNED_URL_SECONDS = 15 * 60
BUNDLE_PREFIX = "bundles/"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class S3BundleStore:
    def __init__(self, s3: Any, bucket: str, prefix: str = BUNDLE_PREFIX) -> None:
        self.s3, self.bucket, self.prefix = s3, bucket, prefix

    def _key(self, sha256: str) -> str:
        if not _SHA256.match(sha256):
            raise ValueError(f"not a sha256: {sha256!r}")
        return f"{self.prefix}{sha256}.zip"

    def exists(self, sha256: str) -> bool:
        try:
            self.s3.head_object(Bucket=self.bucket, Key=self._key(sha256))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def upload_url(self, sha256: str, size: int) -> str:
        return self.s3.generate_presigned_url(
            "put_object", Params={"Bucket": self.bucket, "Key": self._key(sha256),
                                  "ContentType": "application/zip"},
            ExpiresIn=PRESIGNED_URL_SECONDS)

    def download_url(self, sha256: str) -> str:
        return self.s3.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self._key(sha256)},
            ExpiresIn=PRESIGNED_URL_SECONDS)
