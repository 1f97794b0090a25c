"""The Lambda code asset, built on this machine without Docker.

One asset serves the api, scheduler and monitor functions: the `sluice` and `sluice_functions`
package sources plus their third-party dependencies (`lambda_requirements.txt`), installed by pip
as wheels for the Lambda platform (Linux, arm64, CPython `LAMBDA_PYTHON_VERSION`). Nothing else
goes in: no tests, no `sluice_infra`, no `sluice_worker`, no boto3 (the runtime has it). Then
everything is compiled to bytecode by a Python of the runtime's version, when this machine has
one (`bytecode_interpreter`): Lambda's /var/task is read-only, so without `.pyc` files every
cold start compiles every module it imports.

pip is the slow part and needs the package index, so the installed dependencies are cached
under `cache_root()`, keyed by the requirements, platform and Python version; later builds
(every synth, every test session) only copy files. The asset hash covers the dependency key
and every source file, so CloudFormation updates the functions exactly when either changes.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_

#: The Lambda runtime and the wheels pip fetches must agree on these.
#: 3.13, not 3.14: the asset's bytecode must be compiled by a Python of the runtime's version,
#: and 3.13 is the newest one build machines commonly have (pyenv, Debian trixie, python.org).
LAMBDA_PYTHON_VERSION = "3.13"
LAMBDA_RUNTIME = lambda_.Runtime.PYTHON_3_13
LAMBDA_ARCHITECTURE = lambda_.Architecture.ARM_64
#: manylinux2014 (glibc 2.17) wheels run on Amazon Linux 2023, the OS of the Python runtimes.
PIP_PLATFORM = "manylinux2014_aarch64"
REQUIREMENTS_FILE = Path(__file__).with_name("lambda_requirements.txt")
#: The import packages whose sources are copied into the asset.
SOURCE_PACKAGES = ("sluice", "sluice_functions")
#: Bump when the asset's layout changes, so that cached dependencies are rebuilt.
ASSET_LAYOUT_VERSION = "1"
_SKIPPED_DIRS = frozenset({"__pycache__"})
_SKIPPED_SUFFIXES = (".pyc", ".pyo")
#: Console scripts pip installs for the build machine: useless (and wrong) in Lambda.
_DROPPED_FROM_DEPENDENCIES = ("bin",)
_COMPLETE_MARKER = ".complete"


class LambdaAssetError(RuntimeError):
    """The asset cannot be built (pip failed, a package is missing); the message says why."""


def cache_root() -> Path:
    """Where built dependencies are kept: `SLUICE_ASSET_CACHE`, else the user's cache dir."""
    explicit = os.environ.get("SLUICE_ASSET_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "sluice" / "lambda-assets"


def package_dir(name: str) -> Path:
    """The directory of an import package, found without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise LambdaAssetError(f"package {name!r} is not installed; install sluice with "
                               "`pip install -e '.[infra]'` (or `sluice-flows[infra]`)")
    return Path(next(iter(spec.submodule_search_locations)))


def source_files(package: str) -> Iterator[tuple[str, Path]]:
    """(path inside the asset, file) for every source file of `package`, sorted."""
    root = package_dir(package)
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if not path.is_file() or _SKIPPED_DIRS & set(relative.parts):
            continue
        if path.suffix in _SKIPPED_SUFFIXES:
            continue
        yield f"{package}/{relative.as_posix()}", path


def hash_sources(digest: Any, packages: Iterable[str]) -> None:
    """Feed every source file of `packages` (path inside the asset, then bytes) to `digest`:
    the part of an asset's identity its own code makes."""
    for package in packages:
        for name, path in source_files(package):
            digest.update(name.encode() + b"\0")
            digest.update(path.read_bytes())
            digest.update(b"\0")


def copy_sources(output_dir: Path, packages: Iterable[str]) -> None:
    """Copy every source file of `packages` into an asset being built at `output_dir`."""
    for package in packages:
        for name, path in source_files(package):
            destination = output_dir / name
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, destination)


def dependencies_key(requirements: str | None = None) -> str:
    """What the installed dependencies depend on: requirements, platform, Python, layout."""
    text = requirements if requirements is not None else REQUIREMENTS_FILE.read_text()
    digest = hashlib.sha256()
    for part in (ASSET_LAYOUT_VERSION, PIP_PLATFORM, LAMBDA_PYTHON_VERSION, text):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def asset_hash() -> str:
    """The asset's identity: the dependency key and every source file (path and bytes)."""
    digest = hashlib.sha256(dependencies_key().encode())
    digest.update(bytecode_tag().encode() + b"\0")
    hash_sources(digest, SOURCE_PACKAGES)
    return digest.hexdigest()


def pip_install(requirements_file: Path, target: Path, *extra_args: str) -> None:
    """Install the requirements' wheels for the Lambda platform into `target`; raises
    `LambdaAssetError` naming the cause when pip cannot (no index, no such wheel)."""
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
        "--target", str(target), "--platform", PIP_PLATFORM, "--implementation", "cp",
        "--python-version", LAMBDA_PYTHON_VERSION, "--only-binary=:all:",
        # .pyc files compiled by this machine's Python would not match the runtime's.
        "--no-compile",
        "-r", str(requirements_file), *extra_args,
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise LambdaAssetError(f"could not run pip to build the Lambda asset: {error}") from error
    if done.returncode != 0:
        detail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
        raise LambdaAssetError(
            "pip could not install the Lambda function's dependencies "
            f"({requirements_file.name}) as wheels for {PIP_PLATFORM}, CPython "
            f"{LAMBDA_PYTHON_VERSION}. The asset is built without Docker, so every dependency "
            "must be reachable on your package index (PIP_INDEX_URL) and publish a wheel for "
            f"that platform. pip said:\n{detail}"
        )


def ensure_dependencies(root: Path | None = None, requirements_file: Path = REQUIREMENTS_FILE,
                        *pip_args: str) -> Path:
    """The directory of the installed dependencies, building it with pip on a cache miss.

    Built in a private directory and renamed into place, so concurrent synths never see a
    half-built cache entry.
    """
    root = root or cache_root()
    final = root / f"deps-{dependencies_key(requirements_file.read_text())[:32]}"
    if (final / _COMPLETE_MARKER).exists():
        return final
    root.mkdir(parents=True, exist_ok=True)
    building = root / f"building-{uuid.uuid4().hex}"
    try:
        pip_install(requirements_file, building, *pip_args)
        for name in _DROPPED_FROM_DEPENDENCIES:
            shutil.rmtree(building / name, ignore_errors=True)
        (building / _COMPLETE_MARKER).write_text(requirements_file.read_text())
        shutil.rmtree(final, ignore_errors=True)  # a stale, incomplete entry
        try:
            building.rename(final)
        except OSError:
            if not (final / _COMPLETE_MARKER).exists():  # not a concurrent build that won
                raise
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return final


def bytecode_interpreter(version: str = LAMBDA_PYTHON_VERSION) -> str | None:
    """A Python of `version` (the runtime's) to compile the asset's bytecode with, or None.

    `.pyc` files are specific to a Python version, so only an interpreter of the runtime's
    version will do: `SLUICE_LAMBDA_PYTHON` (a path), else `python<version>` on PATH, else one
    pyenv installed, else this very interpreter when it is that version."""
    explicit = os.environ.get("SLUICE_LAMBDA_PYTHON")
    # pyenv's shims refuse a version that is installed but not selected: ask its own binaries.
    pyenv_root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    candidates = [explicit] if explicit else [
        shutil.which(f"python{version}"),
        *map(str, sorted(pyenv_root.glob(f"versions/{version}.*/bin/python{version}"),
                         reverse=True))]
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        candidates.append(sys.executable)
    for candidate in candidates:
        if candidate and _python_version(candidate) == version:
            return candidate
    return None


def _python_version(interpreter: str) -> str | None:
    try:
        done = subprocess.run(
            [interpreter, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def compile_bytecode(directory: Path, interpreter: str) -> None:
    """Compile every module under `directory` with `interpreter` into `__pycache__`.

    Unchecked-hash pycs: the runtime never stats the source to validate them, and never tries
    to rewrite them (Lambda's /var/task is read-only, so a stale or missing pyc would mean a
    compile on every cold start). The asset is immutable, so they cannot go stale."""
    command = [interpreter, "-m", "compileall", "-q", "-j0",
               "--invalidation-mode", "unchecked-hash", str(directory)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise LambdaAssetError(f"could not compile the asset's bytecode: {error}") from error
    if done.returncode != 0:
        detail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
        raise LambdaAssetError(f"compiling the asset's bytecode with {interpreter} failed:\n"
                               f"{detail}")


def bytecode_tag() -> str:
    """What bytecode the asset carries ("cpython-314", or "none" without an interpreter of the
    runtime's version); part of the asset hash, so gaining bytecode updates the functions."""
    return (f"cpython-{LAMBDA_PYTHON_VERSION.replace('.', '')}"
            if bytecode_interpreter() else "none")


def build_asset(output_dir: Path, root: Path | None = None) -> None:
    """Write the whole asset into `output_dir`: dependencies, then the package sources, then
    their bytecode for the runtime's Python when an interpreter of that version is here."""
    dependencies = ensure_dependencies(root)
    shutil.copytree(dependencies, output_dir, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns(_COMPLETE_MARKER))
    copy_sources(output_dir, SOURCE_PACKAGES)
    interpreter = bytecode_interpreter()
    if interpreter is None:
        print(f"sluice: no Python {LAMBDA_PYTHON_VERSION} here, so the Lambda asset ships no "
              "bytecode and every cold start compiles it (about 0.3 s more); install "
              f"python{LAMBDA_PYTHON_VERSION} or set SLUICE_LAMBDA_PYTHON to one",
              file=sys.stderr)
        return
    compile_bytecode(output_dir, interpreter)


@jsii.implements(ILocalBundling)
class LocalPythonBundling:
    """CDK's local bundling hook: builds the asset with pip on this machine. It never returns
    False, because False would make CDK fall back to Docker, which this project does not use;
    a failure raises `LambdaAssetError` with the reason instead."""

    def try_bundle(self, output_dir: str, *_options: Any, **_keywords: Any) -> bool:
        build_asset(Path(output_dir))
        return True


def function_code() -> lambda_.Code:
    """The shared asset as Lambda code (one asset, staged once, for all three functions)."""
    return lambda_.Code.from_asset(
        str(package_dir("sluice_functions")),
        asset_hash_type=AssetHashType.CUSTOM,
        asset_hash=asset_hash(),
        bundling=BundlingOptions(
            # Required by the API, never pulled: local bundling always succeeds or raises.
            image=DockerImage.from_registry("sluice-local-bundling-only"),
            local=LocalPythonBundling(),
        ),
    )
