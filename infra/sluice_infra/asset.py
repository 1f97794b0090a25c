"""The Lambda code asset, built on this machine without Docker.

One asset serves the api, scheduler and monitor functions: the `sluice` and `sluice_functions`
package sources plus their third-party dependencies (`lambda_requirements.txt`), installed by pip
as wheels for the Lambda platform (Linux, arm64, CPython `LAMBDA_PYTHON_VERSION`). Nothing else
goes in: no tests, no `sluice_infra`, no `sluice_worker`, no boto3 (the runtime has it).

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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_

#: The Lambda runtime and the wheels pip fetches must agree on these.
LAMBDA_PYTHON_VERSION = "3.14"
LAMBDA_RUNTIME = lambda_.Runtime.PYTHON_3_14
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
    for package in SOURCE_PACKAGES:
        for name, path in source_files(package):
            digest.update(name.encode() + b"\0")
            digest.update(path.read_bytes())
            digest.update(b"\0")
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


def build_asset(output_dir: Path, root: Path | None = None) -> None:
    """Write the whole asset into `output_dir`: dependencies, then the package sources."""
    dependencies = ensure_dependencies(root)
    shutil.copytree(dependencies, output_dir, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns(_COMPLETE_MARKER))
    for package in SOURCE_PACKAGES:
        for name, path in source_files(package):
            destination = output_dir / name
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, destination)


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
