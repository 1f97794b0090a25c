"""Files only their owner may read (tokens, profiles): written 0600 from their first byte."""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE_FILE_MODE = 0o600


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path` atomically, readable by this user only from the first byte: a
    file written first and chmod-ed after could be read in between. The temporary file is not
    followed if it is a symlink, and the rename replaces (never follows) one at `path`."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, PRIVATE_FILE_MODE)
    try:
        os.fchmod(fd, PRIVATE_FILE_MODE)  # O_CREAT's mode is filtered by the umask
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
