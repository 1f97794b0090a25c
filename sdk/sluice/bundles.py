"""Code bundles: the project directory zipped reproducibly (same files, same bytes, same
hash), honouring `.gitignore` and `.sluiceignore`, uploaded to the control plane's storage."""

from __future__ import annotations

import fnmatch
import hashlib
import io
import subprocess
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from .exceptions import ConfigurationError
from .models import MAX_BUNDLE_BYTES, BundleUploadRequest, CodeSource, SourceKind

if TYPE_CHECKING:
    from .client import SluiceClient

IGNORE_FILE = ".sluiceignore"
ALWAYS_IGNORED = (".git", "__pycache__", ".venv", "venv", ".mypy_cache", ".pytest_cache",
                  "node_modules", "*.pyc")
_EPOCH = (1980, 1, 1, 0, 0, 0)  # zip timestamps are fixed so equal content hashes equally


def _patterns(path: Path) -> list[str]:
    if not path.is_file():
        return []
    return [line.strip() for line in path.read_text().splitlines()
            if line.strip() and not line.startswith("#")]


def _ignored(relative: str, patterns: list[str]) -> bool:
    parts = relative.split("/")
    for pattern in patterns:
        anchored = pattern.startswith("/")
        body = pattern.strip("/")
        if anchored or "/" in body:
            if fnmatch.fnmatch(relative, body) or relative.startswith(body + "/"):
                return True
        elif any(fnmatch.fnmatch(part, body) for part in parts):
            return True
    return False


def project_files(root: Path) -> list[str]:
    """Files of the project, relative, sorted. Inside a git work tree git decides what
    `.gitignore` excludes; elsewhere its patterns are applied here."""
    root = root.resolve()
    extra = _patterns(root / IGNORE_FILE) + list(ALWAYS_IGNORED)
    try:
        listed = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "--cached",
                                 "--others", "--exclude-standard"], capture_output=True,
                                check=True).stdout.decode().split("\0")
        files = [f for f in listed if f and (root / f).is_file()]
    except (OSError, subprocess.CalledProcessError):
        extra += _patterns(root / ".gitignore")
        files = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]
    return sorted(f for f in files if not _ignored(f, extra))


def build_bundle(root: Path) -> tuple[bytes, str, int]:
    """(zip bytes, sha256, file count) of the project at `root`."""
    files = project_files(root)
    if not files:
        raise ConfigurationError(f"{root} has no files to bundle (all ignored?)")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in files:
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, (root / name).read_bytes())
    data = buffer.getvalue()
    if len(data) > MAX_BUNDLE_BYTES:
        raise ConfigurationError(
            f"the bundle is {len(data) // 1_000_000} MB, over the {MAX_BUNDLE_BYTES // 1_000_000}"
            f" MB limit: exclude data and build output in {IGNORE_FILE}")
    return data, hashlib.sha256(data).hexdigest(), len(files)


def upload_bundle(client: SluiceClient, root: Path, *, requirements: str | None = None
                  ) -> CodeSource:
    """Zip `root`, upload it unless the control plane has it already, return the source."""
    data, digest, _ = build_bundle(Path(root))
    location = client.request_bundle_upload(BundleUploadRequest(sha256=digest, size=len(data)))
    if not location.exists:
        assert location.upload_url is not None
        client.put_bundle(location.upload_url, data)
    return CodeSource(kind=SourceKind.BUNDLE, bundle_sha256=digest, requirements=requirements)
