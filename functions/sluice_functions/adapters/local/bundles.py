"""Bundles as files in the server's data directory, uploaded and downloaded through the
embedded server's own `/bundle-data/<sha256>` URLs."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

from sluice.models import MAX_BUNDLE_BYTES

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class LocalBundleStore:
    def __init__(self, root: Path, base_url: str) -> None:
        self.root = Path(root)
        self.base_url = base_url.rstrip("/")

    def path(self, sha256: str) -> Path:
        if not _SHA256.match(sha256):
            raise ValueError(f"not a sha256: {sha256!r}")
        return self.root / f"{sha256}.zip"

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def upload_url(self, sha256: str, size: int) -> str:
        return f"{self.base_url}/bundle-data/{sha256}"

    def upload_headers(self, sha256: str, size: int) -> dict[str, str]:
        # `write` checks size and hash of what arrives; nothing needs signing locally.
        return {"content-type": "application/zip"}

    def download_url(self, sha256: str) -> str:
        return f"{self.base_url}/bundle-data/{sha256}"

    def write(self, sha256: str, data: bytes) -> None:
        """Store an upload; refuses (ValueError, before anything is written) bytes over the
        bundle size limit or that do not hash to the name (content addressing)."""
        self.path(sha256)  # refuses a name that is no sha256
        if len(data) > MAX_BUNDLE_BYTES:
            raise ValueError(f"the upload is {len(data)} bytes, over the {MAX_BUNDLE_BYTES}-byte "
                             "bundle limit: exclude data and build output in .sluiceignore")
        if hashlib.sha256(data).hexdigest() != sha256:
            raise ValueError("the uploaded bytes do not match the bundle's sha256: upload the "
                             "bundle the URL was requested for (sluice deploy does)")
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, self.path(sha256))
        except BaseException:
            os.unlink(tmp)  # a failed write leaves no partial file behind
            raise

    def read(self, sha256: str) -> bytes | None:
        try:
            return self.path(sha256).read_bytes()
        except FileNotFoundError:
            return None
