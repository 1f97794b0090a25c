"""The code asset of pool functions (a `LambdaPool`'s function, a `FargatePool`'s dispatcher),
built on this machine without Docker like the control plane's (`sluice_infra.asset`).

A separate asset from the control plane's: the `sluice` and `sluice_worker` sources (no
`sluice_functions`), the worker's third-party dependencies (`POOL_REQUIREMENTS`) and the user's
own requirements (what their flows import: a Lambda pool runs flows in the function), installed
as wheels for the Lambda platform and compiled to bytecode when a Python of the runtime's version
is here. Installed dependencies are cached by requirements (`asset.ensure_dependencies`), so
only the first synth with a new requirement list needs the package index.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_

from ..asset import (
    LambdaAssetError,
    bytecode_interpreter,
    bytecode_tag,
    cache_root,
    compile_bytecode,
    copy_sources,
    dependencies_key,
    ensure_dependencies,
    hash_sources,
    package_dir,
)

#: The import packages whose sources go into a pool function's asset.
POOL_SOURCE_PACKAGES = ("sluice", "sluice_worker")
#: What `sluice` and `sluice_worker` import at run time in a pool function (boto3 comes with the
#: runtime), pinned to the versions the tests run with; Powertools for the SQS batch handling.
POOL_REQUIREMENTS = (
    "pydantic==2.14.4",
    "pydantic-settings==2.16.3",
    "httpx==0.29.0",
    "typer==0.29.2",
    "rich==15.0.0",
    "croniter==7.0.0",
    "PyYAML==6.0.4",
    "aws-lambda-powertools==3.37.0",
    # The asset comes first on Lambda's sys.path: stay within the runtime botocore's range.
    "python-dateutil>=2.8.2,<3",
)


def pool_requirements_text(requirements: Sequence[str] = ()) -> str:
    """The requirements file of a pool asset: the worker's, then the user's (one a line)."""
    for requirement in requirements:
        if not requirement.strip() or "\n" in requirement:
            raise LambdaAssetError(f"pool requirement {requirement!r} must be one non-empty pip "
                                   "requirement (e.g. 'pandas==2.2.3')")
    return "\n".join((*POOL_REQUIREMENTS, *(r.strip() for r in requirements))) + "\n"


def pool_asset_hash(requirements: Sequence[str] = ()) -> str:
    """The asset's identity: its dependency key, bytecode and every source file."""
    digest = hashlib.sha256(b"pool\0")
    digest.update(dependencies_key(pool_requirements_text(requirements)).encode() + b"\0")
    digest.update(bytecode_tag().encode() + b"\0")
    hash_sources(digest, POOL_SOURCE_PACKAGES)
    return digest.hexdigest()


def build_pool_asset(output_dir: Path, requirements: Sequence[str] = (),
                     root: Path | None = None) -> None:
    """Write a pool asset into `output_dir`: dependencies, sources, then their bytecode."""
    with tempfile.TemporaryDirectory(prefix="sluice-pool-requirements-") as scratch:
        requirements_file = Path(scratch) / "requirements.txt"
        requirements_file.write_text(pool_requirements_text(requirements))
        dependencies = ensure_dependencies(root or cache_root(), requirements_file)
    shutil.copytree(dependencies, output_dir, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns(".complete"))
    copy_sources(output_dir, POOL_SOURCE_PACKAGES)
    interpreter = bytecode_interpreter()
    if interpreter is not None:
        compile_bytecode(output_dir, interpreter)


@jsii.implements(ILocalBundling)
class LocalPoolBundling:
    """CDK's local bundling hook for a pool asset; never falls back to Docker (see
    `asset.LocalPythonBundling`)."""

    def __init__(self, requirements: Sequence[str]) -> None:
        self._requirements = tuple(requirements)

    def try_bundle(self, output_dir: str, *_options: Any, **_keywords: Any) -> bool:
        build_pool_asset(Path(output_dir), self._requirements)
        return True


def pool_function_code(requirements: Sequence[str] = ()) -> lambda_.Code:
    """A pool function's code: `sluice` + `sluice_worker` + `requirements`. Pools with the same
    requirements share one staged asset (same hash)."""
    return lambda_.Code.from_asset(
        str(package_dir("sluice_worker")),
        asset_hash_type=AssetHashType.CUSTOM,
        asset_hash=pool_asset_hash(requirements),
        bundling=BundlingOptions(
            image=DockerImage.from_registry("sluice-local-bundling-only"),
            local=LocalPoolBundling(requirements),
        ),
    )
