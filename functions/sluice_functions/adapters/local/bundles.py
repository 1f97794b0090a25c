"""Bundles as files in the server's data directory, uploaded and downloaded through the
embedded server's own `/bundle-data/<sha256>` URLs."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

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

    def download_url(self, sha256: str) -> str:
        return f"{self.base_url}/bundle-data/{sha256}"

    def write(self, sha256: str, data: bytes) -> None:
        """Store an upload; refuses bytes that do not hash to the name (content addressing)."""
        if hashlib.sha256(data).hexdigest() != sha256:
            raise ValueError("the uploaded bytes do not match the bundle's sha256")
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".upload-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, self.path(sha256))

    def read(self, sha256: str) -> bytes | None:
        try:
            return self.path(sha256).read_bytes()
        except FileNotFoundError:
            return None
