"""Extracting a code bundle without trusting it: whoever can upload a bundle (or swap one in
the bucket) must not be able to fill the worker's disk (a zip bomb), write outside the
destination (`../`, absolute paths), or plant links the run would follow.

Everything is checked from the zip's directory before a byte is written, and the bytes actually
written are counted as well, since a zip's headers can lie about sizes.
"""

from __future__ import annotations

import io
import shutil
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

#: Largest total a bundle may expand to (sdk bundles are at most 100 MB zipped: code, not data).
MAX_EXTRACTED_BYTES = 1024 ** 3
#: Most entries a bundle may hold.
MAX_MEMBERS = 50_000
#: Largest expansion allowed, overall and per member. Source code deflates 3-10x; a
#: bomb of zeros deflates ~1000x (the issue's 306 KB that expanded to 300 MB).
MAX_COMPRESSION_RATIO = 100
#: Below this, expansion is harmless whatever the ratio (a small file of repeated text).
RATIO_FLOOR_BYTES = 16 * 1024 ** 2
_CHUNK = 1024 ** 2


class UnsafeArchive(ValueError):
    """The bundle is refused; the message says which limit or which member."""


@dataclass(frozen=True)
class ExtractionLimits:
    max_bytes: int = MAX_EXTRACTED_BYTES
    max_members: int = MAX_MEMBERS
    max_ratio: float = MAX_COMPRESSION_RATIO


def _check_member(info: zipfile.ZipInfo) -> None:
    name = info.filename
    parts = PurePosixPath(name).parts
    if (name.startswith(("/", "\\")) or "\\" in name or "\0" in name or ".." in parts
            or (parts and parts[0].endswith(":"))):
        raise UnsafeArchive(f"member {name!r} has an absolute or parent path ('..', '/', "
                            "'\\' or a drive): it would be written outside the bundle's "
                            "directory")
    kind = stat.S_IFMT(info.external_attr >> 16)
    if kind == stat.S_IFLNK:
        raise UnsafeArchive(f"member {name!r} is a symlink: bundles hold regular files only "
                            "(sluice deploy never packs links)")
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise UnsafeArchive(f"member {name!r} is a special file (mode {kind:o}): bundles hold "
                            "regular files only")


def _check_sizes(infos: list[zipfile.ZipInfo], zipped: int, limits: ExtractionLimits) -> None:
    if len(infos) > limits.max_members:
        raise UnsafeArchive(f"it has {len(infos)} members, over the limit of "
                            f"{limits.max_members}")
    declared = sum(info.file_size for info in infos)
    if declared > limits.max_bytes:
        raise UnsafeArchive(f"it expands to {declared:,} bytes, over the limit of "
                            f"{limits.max_bytes:,} (SLUICE_WORKER_BUNDLE_MAX_EXTRACTED_BYTES)")
    if declared > RATIO_FLOOR_BYTES and declared > limits.max_ratio * max(zipped, 1):
        raise UnsafeArchive(f"{zipped:,} zipped bytes expand to {declared:,}: a compression "
                            f"ratio over {limits.max_ratio:g}:1 (a zip bomb, or data that does "
                            "not belong in a code bundle)")
    for info in infos:
        if info.file_size > RATIO_FLOOR_BYTES and \
                info.file_size > limits.max_ratio * max(info.compress_size, 1):
            raise UnsafeArchive(f"member {info.filename!r} expands {info.compress_size:,} bytes "
                                f"to {info.file_size:,}: over {limits.max_ratio:g}:1")


def extract(data: bytes, destination: Path,
            limits: ExtractionLimits = ExtractionLimits()) -> int:
    """Extract a bundle's zip bytes into `destination` (a new, empty directory the caller
    owns), refusing it with `UnsafeArchive` before writing anything when it breaks a limit or
    holds an unsafe member. Returns the bytes written. On a refusal midway (a header that
    lied) `destination` may hold partial files: the caller extracts into a temporary directory
    and removes it."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
            for info in infos:
                _check_member(info)
            _check_sizes(infos, len(data), limits)
            return _write(archive, infos, destination.resolve(), limits)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as exc:
        raise UnsafeArchive(f"it is not a readable zip ({exc})") from exc


def _write(archive: zipfile.ZipFile, infos: list[zipfile.ZipInfo], destination: Path,
           limits: ExtractionLimits) -> int:
    written = 0
    for info in infos:
        target = destination.joinpath(*PurePosixPath(info.filename).parts)
        if not target.resolve().is_relative_to(destination):  # defence in depth
            raise UnsafeArchive(f"member {info.filename!r} resolves outside the bundle")
        if info.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        member_bytes = 0
        with archive.open(info) as source, open(target, "wb") as sink:
            while chunk := source.read(_CHUNK):
                member_bytes += len(chunk)
                written += len(chunk)
                if member_bytes > info.file_size or written > limits.max_bytes:
                    raise UnsafeArchive(f"member {info.filename!r} expands beyond what the zip "
                                        "declares or beyond the size limit: refused")
                sink.write(chunk)
    return written


def remove_tree(path: Path) -> None:
    """Remove a directory tree, ignoring what is already gone."""
    shutil.rmtree(path, ignore_errors=True)
