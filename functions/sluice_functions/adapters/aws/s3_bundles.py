"""Bundles in the stack's S3 bucket, moved by presigned URLs: the bytes never pass through
Lambda (whose synchronous payloads stop at 6 MB) or API Gateway."""

from __future__ import annotations

import base64
import re
from typing import Any

from botocore.exceptions import ClientError

#: Presigned URLs live long enough for a slow upload of a large bundle, and no longer.
PRESIGNED_URL_SECONDS = 15 * 60
BUNDLE_PREFIX = "bundles/"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
BUNDLE_CONTENT_TYPE = "application/zip"


def checksum_sha256(sha256: str) -> str:
    """S3's form of a SHA-256 checksum (`x-amz-checksum-sha256`): base64 of the raw digest."""
    return base64.b64encode(bytes.fromhex(sha256)).decode()


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
        """A presigned PUT whose signature covers Content-Length and x-amz-checksum-sha256:
        S3 refuses a body of another size (SignatureDoesNotMatch: the signed length differs)
        or other bytes (BadDigest: the body does not hash to the signed checksum), so the URL
        can only ever store the bundle it was made for, whoever holds it.
        https://docs.aws.amazon.com/AmazonS3/latest/userguide/checking-object-integrity.html"""
        return self.s3.generate_presigned_url(
            "put_object", Params={"Bucket": self.bucket, "Key": self._key(sha256),
                                  "ContentType": BUNDLE_CONTENT_TYPE, "ContentLength": size,
                                  "ChecksumSHA256": checksum_sha256(sha256)},
            ExpiresIn=PRESIGNED_URL_SECONDS)

    def upload_headers(self, sha256: str, size: int) -> dict[str, str]:
        """The signed headers' values, which the PUT must carry as they are."""
        self._key(sha256)
        return {"content-type": BUNDLE_CONTENT_TYPE, "content-length": str(size),
                "x-amz-checksum-sha256": checksum_sha256(sha256)}

    def download_url(self, sha256: str) -> str:
        return self.s3.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self._key(sha256)},
            ExpiresIn=PRESIGNED_URL_SECONDS)
