"""Where a worker gets a deployment's code: a local path, a git repository, or a bundle that
`sluice deploy` uploaded; and the virtual environment its requirements need. All cached, with
a size bound (least recently used entries that no run holds are evicted).

Nothing from a deployment is trusted here, even though the API checks it too (defence in
depth: stored deployments, a swapped bundle): the repository must be a URL and goes after
`--`; git may only use https, ssh and file transports; bundles are extracted within size,
ratio and member limits into a temporary directory; and `subdirectory`, `requirements` and the
entrypoint's file must resolve (symlinks included) inside the project.
"""

from __future__ import annotations

import hashlib
import os
import site
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from sluice.exceptions import ConfigurationError
from sluice.models import MAX_BUNDLE_BYTES, CodeSource, SourceKind
from sluice.models.sources import check_git_ref, check_repository

from .cache_space import CacheSpace
from .unzip import (
    MAX_COMPRESSION_RATIO,
    MAX_EXTRACTED_BYTES,
    MAX_MEMBERS,
    ExtractionLimits,
    UnsafeArchive,
    extract,
    remove_tree,
)

#: Default bound of the whole code cache (bundles, git checkouts, venvs).
DEFAULT_CACHE_MAX_BYTES = 2 * 1024 ** 3
#: The transports git may use, for the repository and any submodule: `ext::` (runs a
#: command), plain `http`/`git` (anyone on the path can swap the code) are refused.
GIT_ALLOWED_PROTOCOLS = "https:ssh:file"


class CodeUnavailable(Exception):
    """The code of a deployment could not be fetched (the run fails with this message)."""


class CodeCacheSettings(BaseSettings):
    """Limits of the worker's code cache: `SLUICE_WORKER_<NAME>` environment variables."""

    model_config = SettingsConfigDict(env_prefix="SLUICE_WORKER_", extra="ignore")

    cache_max_bytes: int = Field(default=DEFAULT_CACHE_MAX_BYTES, ge=0, description=(
        "Bound of the code cache; least recently used entries no run holds are evicted."))
    bundle_max_extracted_bytes: int = Field(default=MAX_EXTRACTED_BYTES, gt=0, description=(
        "Largest total a bundle may expand to."))
    bundle_max_members: int = Field(default=MAX_MEMBERS, gt=0,
                                    description="Most files a bundle may hold.")
    bundle_max_ratio: float = Field(default=MAX_COMPRESSION_RATIO, gt=1, description=(
        "Largest expansion ratio (overall and per file) above 16 MiB."))


class CodeCache:
    """Fetches code into `root` (per source, reused between runs) and builds venvs by
    requirements hash. Safe for the worker's concurrent slots, and for several workers
    sharing `root`. A run pins what it uses (`holder`) until `release(holder)`."""

    def __init__(self, root: Path, *, download_bundle: Callable[[str], bytes] | None = None,
                 settings: CodeCacheSettings | None = None) -> None:
        self.root = Path(root).expanduser()
        self.download_bundle = download_bundle
        self.settings = settings or CodeCacheSettings()
        self.space = CacheSpace(self.root, self.settings.cache_max_bytes)
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def _lock(self, key: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(key, threading.Lock())

    def directory(self, source: CodeSource, *, entrypoint: str | None = None,
                  holder: object = None) -> Path:
        """The directory the entrypoint is relative to, pinned for `holder` (if given) so
        that eviction leaves it alone until `release(holder)`. With `entrypoint`, its file
        must be inside the project."""
        if source.kind is SourceKind.LOCAL:
            project = Path(source.path or ".").expanduser()
            if not project.is_dir():
                raise CodeUnavailable(f"local source {project} is not a directory on this worker")
            code_dir = project
        else:
            fetch = self._git if source.kind is SourceKind.GIT else self._bundle
            project = self._cached(fetch, source, holder)
            code_dir = _inside(project, source.subdirectory, "subdirectory", directory=True)
        if entrypoint is not None:
            check_entrypoint_inside(code_dir, entrypoint, project)
        return code_dir

    def release(self, holder: object) -> None:
        """The run of `holder` ended: what it used may be evicted again."""
        self.space.release(holder)

    def _cached(self, fetch: Callable[[CodeSource, Path], bool], source: CodeSource,
                holder: object) -> Path:
        entry = self._entry(source)
        pin = holder if holder is not None else object()
        self.space.pin(entry, pin)  # before the fetch: an eviction cannot remove it meanwhile
        try:
            with self._lock(entry.relative_to(self.root).as_posix()):
                entry.parent.mkdir(parents=True, exist_ok=True)
                changed = fetch(source, entry)
            self.space.used(entry, changed=changed)
        finally:
            if holder is None:
                self.space.release(pin)
        if changed:
            self.space.evict(keep=entry)
        return entry

    def _entry(self, source: CodeSource) -> Path:
        if source.kind is SourceKind.GIT:
            if not source.repository:
                raise CodeUnavailable("git source has no repository URL")
            try:  # before anything is written, even a lock file
                check_repository(source.repository)
                if source.ref is not None:
                    check_git_ref(source.ref)
            except ValueError as exc:
                raise CodeUnavailable(str(exc)) from None
            ref = source.ref or "HEAD"
            key = hashlib.sha256(f"{source.repository}@{ref}".encode()).hexdigest()[:20]
            return self.root / "git" / key
        digest = source.bundle_sha256
        if not digest or len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
            raise CodeUnavailable(f"bundle source has no valid sha256 ({digest!r})")
        return self.root / "bundles" / digest

    def _git(self, source: CodeSource, target: Path) -> bool:
        assert source.repository is not None  # checked by `_entry`
        ref = source.ref or "HEAD"
        try:
            if not (target / ".git").exists():
                remove_tree(target)  # a clone that died halfway
                # `--`: the repository is never read as an option (`--upload-pack=...`).
                _git("clone", "--quiet", "--", source.repository, str(target))
            else:
                _git("-C", str(target), "fetch", "--quiet", "origin")
            if ref != "HEAD":
                # `ref` passed check_git_ref, so it never starts with '-' (git 2.39's checkout
                # takes no --end-of-options).
                _git("-C", str(target), "checkout", "--quiet", "--force", ref)
                # A branch moves: follow the fetched remote branch when there is one.
                remote = subprocess.run(["git", "-C", str(target), "rev-parse", "--verify",
                                         "--quiet", "--end-of-options", f"origin/{ref}"],
                                        capture_output=True, env=_git_environment())
                if remote.returncode == 0:
                    _git("-C", str(target), "reset", "--quiet", "--hard", f"origin/{ref}")
        except subprocess.CalledProcessError as exc:
            detail = (exc.stderr or b"").decode(errors="replace").strip()
            raise CodeUnavailable(f"git {source.repository}@{ref} failed: {detail}") from exc
        return True

    def _bundle(self, source: CodeSource, target: Path) -> bool:
        digest = target.name
        if (target / ".complete").exists():
            return False
        if self.download_bundle is None:
            raise CodeUnavailable("this worker cannot download bundles")
        data = self.download_bundle(digest)
        if len(data) > MAX_BUNDLE_BYTES:
            raise CodeUnavailable(f"bundle {digest[:12]} is {len(data)} bytes, over the "
                                  f"{MAX_BUNDLE_BYTES}-byte limit")
        if hashlib.sha256(data).hexdigest() != digest:
            raise CodeUnavailable(f"bundle {digest[:12]} failed its checksum")
        limits = ExtractionLimits(max_bytes=self.settings.bundle_max_extracted_bytes,
                                  max_members=self.settings.bundle_max_members,
                                  max_ratio=self.settings.bundle_max_ratio)
        # Into a temporary directory renamed when whole: a refused or interrupted extraction
        # leaves nothing that looks like the bundle.
        temporary = Path(tempfile.mkdtemp(prefix=f".tmp-{digest[:12]}-", dir=target.parent))
        try:
            extract(data, temporary, limits)
            (temporary / ".complete").touch()
            remove_tree(target)  # an entry left incomplete by an older worker version
            try:
                os.rename(temporary, target)
            except OSError:
                if not (target / ".complete").exists():  # else another worker was first
                    raise
        except UnsafeArchive as exc:
            raise CodeUnavailable(f"bundle {digest[:12]} refused: {exc}") from None
        finally:
            remove_tree(temporary)
        return True

    def python_for(self, code_dir: Path, requirements: str | None, *,
                   holder: object = None) -> str:
        """The interpreter for a run: this worker's own, or a venv with the deployment's
        requirements (cached by their hash, so deployments with different needs coexist)."""
        if not requirements:
            return sys.executable
        path = _inside(code_dir, requirements, "requirements file", directory=False)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:20]
        venv = self.root / "venvs" / digest
        python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
        pin = holder if holder is not None else object()
        self.space.pin(venv, pin)
        try:
            with self._lock(f"venvs/{digest}"):
                built = not (venv / ".complete").exists()
                if built:
                    _build_venv(venv, python, path, requirements)
            self.space.used(venv, changed=built)
        finally:
            if holder is None:
                self.space.release(pin)
        if built:
            self.space.evict(keep=venv)
        return str(python)


def _build_venv(venv: Path, python: Path, requirements_path: Path, requirements: str) -> None:
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True,
                       capture_output=True)
        _inherit_worker_packages(python)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-r",
                        str(requirements_path)], check=True, capture_output=True)
    except subprocess.CalledProcessError as exc:
        detail = (exc.stderr or b"").decode(errors="replace").strip()[-2000:]
        raise CodeUnavailable(f"installing {requirements} failed: {detail}") from exc
    (venv / ".complete").touch()


def _inside(project: Path, relative: str | None, what: str, *, directory: bool) -> Path:
    """`project / relative`, refused unless it resolves (symlinks followed) inside `project`
    and exists as a directory (or a file)."""
    if not relative:
        return project
    base = project.resolve()
    if Path(relative).is_absolute():
        raise CodeUnavailable(f"{what} {relative!r} is absolute: it must be relative to the "
                              "project")
    resolved = (base / relative).resolve()
    if not resolved.is_relative_to(base):
        raise CodeUnavailable(f"{what} {relative!r} resolves to {resolved}, outside the project "
                              f"{base}: it must name a path inside the project")
    if directory and not resolved.is_dir():
        raise CodeUnavailable(f"{what} {relative!r} is not a directory of the project")
    if not directory and not resolved.is_file():
        raise CodeUnavailable(f"{what} {relative!r} is not a file of the project")
    return resolved


def check_entrypoint_inside(code_dir: Path, entrypoint: str, project: Path) -> None:
    """Refuse an entrypoint whose file is absolute or resolves outside `project` (a module
    entrypoint, `package.module:flow`, is imported from `code_dir` and has no path)."""
    location, _, _ = entrypoint.rpartition(":")
    if not location.endswith(".py"):
        return
    if Path(location).is_absolute():
        raise CodeUnavailable(f"entrypoint {entrypoint!r} is absolute: it must be a file "
                              "relative to the project, e.g. flows/etl.py:nightly")
    resolved = (code_dir / location).resolve()
    if not resolved.is_relative_to(project.resolve()):
        raise CodeUnavailable(f"entrypoint {entrypoint!r} resolves to {resolved}, outside the "
                              f"project {project}: it must be a file inside the project")


def _inherit_worker_packages(python: Path) -> None:
    """Let the run's venv import what the worker has (Sluice itself, even an editable install)
    behind its own packages: a .pth file adds the worker's site-packages after the venv's."""
    purelib = subprocess.run([str(python), "-c",
                              "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    lines = [f"import site; site.addsitedir({p!r})" for p in site.getsitepackages()]
    (Path(purelib) / "_sluice_worker_packages.pth").write_text("\n".join(lines) + "\n")


def _git_environment() -> dict[str, str]:
    return {**os.environ, "GIT_TERMINAL_PROMPT": "0",
            "GIT_ALLOW_PROTOCOL": GIT_ALLOWED_PROTOCOLS}


def _git(*args: str) -> None:
    subprocess.run(["git", *args], check=True, capture_output=True, env=_git_environment())


def validate_source(source: CodeSource) -> None:
    """Refuse a source that can never work, at deploy time."""
    if source.kind is SourceKind.GIT and not source.repository:
        raise ConfigurationError("--source git needs a repository URL (--repository URL)")
    if source.kind is SourceKind.LOCAL and not source.path:
        raise ConfigurationError("--source local needs the project directory")
