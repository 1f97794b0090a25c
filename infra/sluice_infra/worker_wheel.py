"""The worker fleet's copy of Sluice: a wheel built from this project at synth time.

Fleet instances install exactly this wheel, shipped as an S3 asset and checked against its
SHA-256 before pip sees it, never a distribution resolved by name from a package index:
`sluice` on PyPI is an unrelated project, and any name is only as trustworthy as the index
that answers for it. The wheel's third-party dependencies (boto3, pydantic, ...) still come
from the instance's package index.

The wheel is built with the project's own build backend (`setuptools.build_meta`, no build
isolation, so no index is needed) in a subprocess, from a private copy of the sources: two
synths at once never share a build directory, and the user's tree gets no `build/` or
`*.egg-info`. Builds are reproducible (`SOURCE_DATE_EPOCH` fixes the archive's timestamps), so
the same sources always give the same bytes and hash; they are cached under `cache_root()` by a
key over every input file.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from sluice.exceptions import ConfigurationError

from .asset import cache_root, package_dir

#: The name of our distribution on a package index (the import package stays `sluice`).
DISTRIBUTION_NAME = "sluice-flows"
#: The extra a worker host installs with the wheel.
WORKER_EXTRA = "worker"
#: Files at the project root that go into the wheel's metadata.
PROJECT_FILES = ("pyproject.toml", "README.md")
#: 1980-01-01, the earliest time a zip archive can hold: fixed, so rebuilds are byte-identical.
REPRODUCIBLE_EPOCH = "315532800"
#: Bump when the build changes in a way the inputs do not show, so cached wheels are rebuilt.
WHEEL_BUILD_VERSION = "1"
#: Every source change makes a new cached wheel (about 1 MB): the newest few are kept, and older
#: ones only once they are old enough that no synth still running can be about to copy them.
CACHED_WHEELS_KEPT = 8
CACHED_WHEEL_MIN_AGE_SECONDS = 3600
_SKIPPED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", "*.egg-info")
_BUILD_SCRIPT = ("import sys\nfrom setuptools import build_meta\n"
                 "print(build_meta.build_wheel(sys.argv[1]))\n")


class WorkerWheelError(ConfigurationError):
    """The worker wheel cannot be built here; the message says why and what to do instead."""


@dataclass(frozen=True)
class BuiltWheel:
    """A wheel file and the SHA-256 of its bytes (what a worker host checks before installing)."""

    path: Path
    sha256: str

    @property
    def filename(self) -> str:
        """The wheel's standard file name: pip needs it to install the file."""
        return self.path.name

    @classmethod
    def of(cls, path: Path) -> BuiltWheel:
        """A wheel file given by the user, hashed here."""
        if path.suffix != ".whl" or not path.is_file():
            raise WorkerWheelError(f"worker wheel {str(path)!r} is not a .whl file; pass the "
                                   "path of a wheel of sluice-flows (built with `pip wheel "
                                   "--no-deps .` in the project)")
        return cls(path=path, sha256=sha256_of(path))


def refuse_unrelated_distribution(requirement: str) -> None:
    """Refuse a pip requirement that names `sluice`, the unrelated project on PyPI (and an
    empty one); any other requirement (sluice-flows from a private index, a URL) is the
    user's choice."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if match is None:
        raise WorkerWheelError(
            f"worker fleet: sluice_requirement {requirement!r} is not a pip requirement; leave "
            "it unset to install the wheel this app builds, or give e.g. "
            f"'{DISTRIBUTION_NAME}[{WORKER_EXTRA}]==<version>'")
    # PEP 503: names compare lowercased, with runs of "-", "_" and "." as one "-".
    if re.sub(r"[-_.]+", "-", match.group(1)).strip("-").lower() == "sluice":
        raise WorkerWheelError(
            f"worker fleet: sluice_requirement {requirement!r} names `sluice`, an unrelated "
            f"project on PyPI; Sluice's distribution is {DISTRIBUTION_NAME!r}. Leave "
            "sluice_requirement unset to install the wheel this app builds, or give "
            f"'{DISTRIBUTION_NAME}[{WORKER_EXTRA}]==<version>' from your own index")


def sha256_of(path: Path) -> str:
    """The hex SHA-256 of a file's bytes (what `sha256sum` prints)."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def project_root() -> Path:
    """The Sluice project this `sluice_infra` comes from (a checkout or an unpacked sdist).

    Raises `WorkerWheelError` when there is none, e.g. when Sluice was installed from a wheel:
    then the fleet needs `WorkerFleet(sluice_wheel=...)` or `sluice_requirement=...`.
    """
    root = package_dir("sluice_infra").parent.parent
    pyproject = root / "pyproject.toml"
    try:
        name = tomllib.loads(pyproject.read_text())["project"]["name"]
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        name = None
    if name != DISTRIBUTION_NAME:
        raise WorkerWheelError(
            f"the worker fleet installs a wheel built from the Sluice project, but {root} is not "
            f"one (no pyproject.toml naming {DISTRIBUTION_NAME}): Sluice was installed from a "
            "wheel. Pass WorkerFleet(sluice_wheel=<path of a sluice-flows wheel>) or "
            "WorkerFleet(sluice_requirement='sluice-flows[worker]==<version>') for your index")
    return root


def _source_dirs(root: Path) -> list[Path]:
    """The top-level directories holding the import packages (pyproject's package-dir)."""
    settings = tomllib.loads((root / "pyproject.toml").read_text())
    package_dirs = settings.get("tool", {}).get("setuptools", {}).get("package-dir", {})
    return sorted({root / Path(directory).parts[0] for directory in package_dirs.values()})


def _input_files(root: Path) -> Iterator[tuple[str, Path]]:
    """(path relative to the root, file) of everything the build reads, sorted."""
    for name in PROJECT_FILES:
        if (root / name).is_file():
            yield name, root / name
    for directory in _source_dirs(root):
        for path in sorted(directory.rglob("*")):
            relative = path.relative_to(root)
            skipped = any(part == "__pycache__" or part.endswith(".egg-info")
                          for part in relative.parts)
            if path.is_file() and not skipped and path.suffix not in (".pyc", ".pyo"):
                yield relative.as_posix(), path


def wheel_key(root: Path) -> str:
    """What the wheel depends on: every input file (path, mode and bytes) and the builder."""
    try:
        builder = metadata.version("setuptools")
    except metadata.PackageNotFoundError:
        builder = "none"  # the build will say what is missing
    digest = hashlib.sha256(f"{WHEEL_BUILD_VERSION}\0{builder}\0".encode())
    for name, path in _input_files(root):
        digest.update(f"{name}\0{path.stat().st_mode & 0o777:o}\0".encode())
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def build_wheel(root: Path, output_dir: Path) -> BuiltWheel:
    """Build the project's wheel into `output_dir` (no cache) from a private copy of `root`."""
    output_dir.mkdir(parents=True, exist_ok=True)
    work = output_dir / f".source-{uuid.uuid4().hex}"
    try:
        work.mkdir()
        for name in PROJECT_FILES:
            if (root / name).is_file():
                shutil.copy2(root / name, work / name)
        for directory in _source_dirs(root):
            shutil.copytree(directory, work / directory.name, ignore=_SKIPPED)
        environment = {**os.environ, "SOURCE_DATE_EPOCH": REPRODUCIBLE_EPOCH}
        try:
            done = subprocess.run([sys.executable, "-c", _BUILD_SCRIPT, str(output_dir)],
                                  cwd=work, env=environment, capture_output=True, text=True,
                                  timeout=300)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise WorkerWheelError(f"could not run the wheel build: {error}") from error
        if done.returncode != 0:
            detail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
            raise WorkerWheelError(
                "building the worker wheel with setuptools failed (install the infra extra, "
                f"which brings setuptools>=77: pip install -e '.[infra]'). It said:\n{detail}")
        filename = done.stdout.strip().splitlines()[-1]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return BuiltWheel.of(output_dir / filename)


def worker_wheel(root: Path | None = None, cache: Path | None = None) -> BuiltWheel:
    """The project's wheel, from the cache when its inputs have not changed.

    Built in a private directory and renamed into place, so concurrent synths never see a
    half-written cache entry.
    """
    root = root or project_root()
    cache = cache or cache_root()
    final = cache / f"worker-wheel-{wheel_key(root)[:32]}"
    existing = sorted(final.glob("*.whl")) if final.is_dir() else []
    if existing:
        os.utime(final)  # recently used: kept by `_prune`
        return BuiltWheel.of(existing[0])
    building = cache / f"building-wheel-{uuid.uuid4().hex}"
    try:
        built = build_wheel(root, building)
        try:
            building.rename(final)
        except OSError:  # a concurrent build won: its wheel has the same bytes
            if not any(final.glob("*.whl")):
                raise
        return BuiltWheel.of(final / built.filename)
    finally:
        shutil.rmtree(building, ignore_errors=True)
        _prune(cache)


def _prune(cache: Path) -> None:
    """Drop cached wheels beyond the newest `CACHED_WHEELS_KEPT` that are old enough."""
    def last_used(entry: Path) -> float:
        try:
            return entry.stat().st_mtime
        except OSError:  # pruned by a concurrent synth
            return 0.0

    entries = sorted(cache.glob("worker-wheel-*"), key=last_used, reverse=True)
    now = time.time()
    for entry in entries[CACHED_WHEELS_KEPT:]:
        if now - last_used(entry) > CACHED_WHEEL_MIN_AGE_SECONDS:
            shutil.rmtree(entry, ignore_errors=True)
