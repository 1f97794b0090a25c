"""Where a worker gets a deployment's code: a local path, a git repository, or a bundle that
`sluice deploy` uploaded; and the virtual environment its requirements need. All cached."""

from __future__ import annotations

import hashlib
import io
import os
import site
import subprocess
import sys
import threading
import zipfile
from collections.abc import Callable
from pathlib import Path

from sluice.exceptions import ConfigurationError
from sluice.models import CodeSource, SourceKind


class CodeUnavailable(Exception):
    """The code of a deployment could not be fetched (the run fails with this message)."""


class CodeCache:
    """Fetches code into `root` (per source, reused between runs) and builds venvs by
    requirements hash. Safe for the worker's concurrent slots."""

    def __init__(self, root: Path, *, download_bundle: Callable[[str], bytes] | None = None
                 ) -> None:
        self.root = Path(root).expanduser()
        self.download_bundle = download_bundle
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def _lock(self, key: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(key, threading.Lock())

    def directory(self, source: CodeSource) -> Path:
        """The directory the entrypoint is relative to."""
        if source.kind is SourceKind.LOCAL:
            path = Path(source.path or ".").expanduser()
            if not path.is_dir():
                raise CodeUnavailable(f"local source {path} is not a directory on this worker")
            return path
        if source.kind is SourceKind.GIT:
            return self._git(source)
        return self._bundle(source)

    def _git(self, source: CodeSource) -> Path:
        if not source.repository:
            raise CodeUnavailable("git source has no repository URL")
        ref = source.ref or "HEAD"
        key = hashlib.sha256(f"{source.repository}@{ref}".encode()).hexdigest()[:20]
        target = self.root / "git" / key
        with self._lock(f"git:{key}"):
            try:
                if not (target / ".git").exists():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    _git("clone", "--quiet", source.repository, str(target))
                else:
                    _git("-C", str(target), "fetch", "--quiet", "origin")
                if ref != "HEAD":
                    _git("-C", str(target), "checkout", "--quiet", "--force", ref)
                    # A branch moves: follow the fetched remote branch when there is one.
                    remote = subprocess.run(["git", "-C", str(target), "rev-parse", "--verify",
                                             "--quiet", f"origin/{ref}"], capture_output=True)
                    if remote.returncode == 0:
                        _git("-C", str(target), "reset", "--quiet", "--hard", f"origin/{ref}")
            except subprocess.CalledProcessError as exc:
                detail = (exc.stderr or b"").decode(errors="replace").strip()
                raise CodeUnavailable(f"git {source.repository}@{ref} failed: {detail}") from exc
        return target / source.subdirectory if source.subdirectory else target

    def _bundle(self, source: CodeSource) -> Path:
        digest = source.bundle_sha256
        if not digest:
            raise CodeUnavailable("bundle source has no sha256")
        target = self.root / "bundles" / digest
        with self._lock(f"bundle:{digest}"):
            if not (target / ".complete").exists():
                if self.download_bundle is None:
                    raise CodeUnavailable("this worker cannot download bundles")
                data = self.download_bundle(digest)
                if hashlib.sha256(data).hexdigest() != digest:
                    raise CodeUnavailable(f"bundle {digest[:12]} failed its checksum")
                target.mkdir(parents=True, exist_ok=True)
                with zipfile.ZipFile(io.BytesIO(data)) as archive:
                    for member in archive.namelist():
                        if member.startswith("/") or ".." in Path(member).parts:
                            raise CodeUnavailable(f"bundle has an unsafe path {member!r}")
                    archive.extractall(target)
                (target / ".complete").touch()
        return target / source.subdirectory if source.subdirectory else target

    def python_for(self, code_dir: Path, requirements: str | None) -> str:
        """The interpreter for a run: this worker's own, or a venv with the deployment's
        requirements (cached by their hash, so deployments with different needs coexist)."""
        if not requirements:
            return sys.executable
        path = code_dir / requirements
        if not path.is_file():
            raise CodeUnavailable(f"requirements file {requirements} is not in the code")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:20]
        venv = self.root / "venvs" / digest
        python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
        with self._lock(f"venv:{digest}"):
            if not (venv / ".complete").exists():
                try:
                    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True,
                                   capture_output=True)
                    _inherit_worker_packages(python)
                    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-r",
                                    str(path)], check=True, capture_output=True)
                except subprocess.CalledProcessError as exc:
                    detail = (exc.stderr or b"").decode(errors="replace").strip()[-2000:]
                    raise CodeUnavailable(f"installing {requirements} failed: {detail}") from exc
                (venv / ".complete").touch()
        return str(python)


def _inherit_worker_packages(python: Path) -> None:
    """Let the run's venv import what the worker has (Sluice itself, even an editable install)
    behind its own packages: a .pth file adds the worker's site-packages after the venv's."""
    purelib = subprocess.run([str(python), "-c",
                              "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    lines = [f"import site; site.addsitedir({p!r})" for p in site.getsitepackages()]
    (Path(purelib) / "_sluice_worker_packages.pth").write_text("\n".join(lines) + "\n")


def _git(*args: str) -> None:
    subprocess.run(["git", *args], check=True, capture_output=True,
                   env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})


def validate_source(source: CodeSource) -> None:
    """Refuse a source that can never work, at deploy time."""
    if source.kind is SourceKind.GIT and not source.repository:
        raise ConfigurationError("--source git needs a repository URL (--repository URL)")
    if source.kind is SourceKind.LOCAL and not source.path:
        raise ConfigurationError("--source local needs the project directory")
