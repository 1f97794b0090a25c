"""Result storage: results stay on the user's side (a local directory or their own S3 bucket)."""

from __future__ import annotations

import os
import pickle
import tempfile
import time
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from ..exceptions import ConfigurationError


class ResultStorage(Protocol):
    """Bytes by key. Keys are relative paths like `cache/<hash>` or `runs/<run>/<task-run>`."""

    def write(self, key: str, data: bytes) -> None: ...

    def read(self, key: str) -> bytes | None:
        """The bytes stored under `key`, or None when there are none."""

    def describe(self) -> str: ...


class LocalResultStorage:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser()

    def write(self, key: str, data: bytes) -> None:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write-then-rename so a reader never sees half a result.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)

    def read(self, key: str) -> bytes | None:
        try:
            return (self.root / key).read_bytes()
        except FileNotFoundError:
            return None

    def describe(self) -> str:
        return str(self.root)


class S3ResultStorage:
    """Results in the user's own bucket: `s3://bucket/prefix`."""

    def __init__(self, url: str, client: Any = None) -> None:
        parsed = urlparse(url)
        self.bucket = parsed.netloc
        self.prefix = parsed.path.strip("/")
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3  # only runs that persist to S3 pay for importing boto3

            self._client = boto3.client("s3")
        return self._client

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def write(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def read(self, key: str) -> bytes | None:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except self.client.exceptions.NoSuchKey:
            return None

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def storage_from(value: str | os.PathLike[str] | ResultStorage) -> ResultStorage:
    """A storage from an option value: a directory path, an `s3://bucket/prefix` URL, or a
    ResultStorage object."""
    if hasattr(value, "write") and hasattr(value, "read"):
        return value  # type: ignore[return-value]
    text = os.fspath(value)  # type: ignore[arg-type]
    if text.startswith("s3://"):
        if not urlparse(text).netloc:
            raise ConfigurationError(
                f"result_storage {text!r} names no bucket; use s3://my-bucket/prefix"
            )
        return S3ResultStorage(text)
    if "://" in text:
        raise ConfigurationError(
            f"result_storage {text!r} is not supported; use a directory path or s3://bucket/prefix"
        )
    return LocalResultStorage(text)


# A stored result is a pickled (expires_at, value) pair; expires_at is epoch seconds or None.
def dump_result(value: Any, expires_at: float | None) -> bytes:
    return pickle.dumps((expires_at, value), protocol=pickle.HIGHEST_PROTOCOL)


_MISSING = object()


def load_result(data: bytes | None, now: float | None = None) -> Any:
    """The stored value, or `MISSING` when absent or expired."""
    if data is None:
        return _MISSING
    expires_at, value = pickle.loads(data)
    if expires_at is not None and (now if now is not None else time.time()) >= expires_at:
        return _MISSING
    return value


MISSING = _MISSING
