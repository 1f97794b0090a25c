"""The Lambda asset: built without Docker, only what the functions need, cached, and a clear
error when pip cannot get a wheel."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from sluice_infra import asset
from sluice_infra.asset import (
    LAMBDA_PYTHON_VERSION,
    PIP_PLATFORM,
    REQUIREMENTS_FILE,
    SOURCE_PACKAGES,
    LambdaAssetError,
    ensure_dependencies,
    source_files,
)

#: Unzipped; Lambda's own ceiling is 250 MB. Today's asset is about 15 MB.
MAX_ASSET_BYTES = 40 * 1024 * 1024
#: Provided by the Lambda Python runtime, so never shipped (certifi: botocore uses it when
#: present and its own CA bundle otherwise).
RUNTIME_PROVIDED = {"boto3", "botocore", "s3transfer", "urllib3", "certifi"}


@pytest.fixture
def asset_dir(synthesized) -> Path:
    (function,) = [f for f in synthesized.resources("AWS::Lambda::Function").values()
                   if f["Properties"]["Handler"].endswith("api.handler")]
    digest = function["Properties"]["Code"]["S3Key"].removesuffix(".zip")
    path = synthesized.outdir / "default" / f"asset.{digest}"
    assert path.is_dir(), path
    return path


def test_the_asset_holds_the_function_packages_and_their_dependencies(asset_dir):
    top = {path.name for path in asset_dir.iterdir()}
    for needed in ("sluice", "sluice_functions", "pydantic", "pydantic_core", "pydantic_settings",
                   "aws_lambda_powertools", "croniter", "dateutil"):
        assert needed in top, needed
    for excluded in ("sluice_worker", "sluice_infra", "tests", "bin", *RUNTIME_PROVIDED,
                     "aws_cdk", "moto", "httpx", "typer"):
        assert excluded not in top, excluded
    files = [p for p in asset_dir.rglob("*") if p.is_file()]
    # Bytecode only of the runtime's Python, compiled on purpose (test_operations checks it):
    # never this machine's leftovers.
    runtime_tag = f"cpython-{LAMBDA_PYTHON_VERSION.replace('.', '')}"
    assert not [p for p in files if (p.suffix == ".pyc" or "__pycache__" in p.parts)
                and f".{runtime_tag}." not in p.name]
    # The pydantic-core extension is built for the Lambda platform, not this machine.
    (extension,) = asset_dir.glob("pydantic_core/_pydantic_core.*.so")
    assert extension.name.endswith(f"cpython-{asset.LAMBDA_PYTHON_VERSION.replace('.', '')}"
                                   "-aarch64-linux-gnu.so")
    size = sum(p.stat().st_size for p in files)
    assert size < MAX_ASSET_BYTES, f"the asset grew to {size / 2**20:.1f} MB"


def test_the_asset_has_the_current_sources_byte_for_byte(asset_dir):
    for package in SOURCE_PACKAGES:
        sources = list(source_files(package))
        assert len(sources) > 10
        for name, path in sources:
            assert (asset_dir / name).read_bytes() == path.read_bytes(), name


def test_the_asset_has_every_third_party_module_the_handlers_import(asset_dir):
    # Imported in a fresh interpreter, so that only the handlers' imports are counted.
    probe = (
        "import json, sys; before = set(sys.modules)\n"
        "import sluice_functions.handlers.api, sluice_functions.handlers.scheduler\n"
        "import sluice_functions.handlers.monitor, sluice_functions.adapters.aws\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in set(sys.modules) - before})))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True, timeout=60)
    imported = set(json.loads(done.stdout.splitlines()[-1]))
    third_party = {m for m in imported if m not in sys.stdlib_module_names
                   and not m.startswith("_") and m not in RUNTIME_PROVIDED}
    assert {"pydantic", "aws_lambda_powertools", "croniter"} <= third_party
    shipped = {p.name.removesuffix(".py") for p in asset_dir.iterdir()}
    assert third_party - shipped == set()


def test_pinned_dependencies_are_the_versions_the_tests_run():
    for line in REQUIREMENTS_FILE.read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            assert metadata.version(name.strip()) == version.strip(), \
                f"{REQUIREMENTS_FILE.name} pins {line}; bump it to what the tests run"


def test_the_shipped_dateutil_suits_the_runtimes_botocore(asset_dir):
    # The asset's copy comes first on sys.path, so botocore (python-dateutil<3) imports it.
    (info,) = asset_dir.glob("python_dateutil-*.dist-info")
    assert int(info.name.split("-")[1].split(".")[0]) < 3


def test_a_dependency_pip_cannot_get_fails_the_build_naming_the_cause(tmp_path):
    requirements = tmp_path / "lambda_requirements.txt"
    requirements.write_text("sluice-no-such-package==1.0\n")
    empty_index = tmp_path / "wheels"
    empty_index.mkdir()
    cache = tmp_path / "cache"
    with pytest.raises(LambdaAssetError) as raised:
        # Offline: an empty local index instead of PyPI.
        ensure_dependencies(cache, requirements, "--no-index", "--find-links", str(empty_index))
    message = str(raised.value)
    assert "lambda_requirements.txt" in message and PIP_PLATFORM in message
    assert "sluice-no-such-package" in message  # pip's own words are passed on
    assert list(cache.iterdir()) == []  # nothing half-built left in the cache


def test_built_dependencies_are_reused_without_pip(synthesized, monkeypatch):
    def no_pip(*args, **kwargs):
        raise AssertionError("pip ran although the dependencies were cached")

    monkeypatch.setattr(asset, "pip_install", no_pip)
    assert (ensure_dependencies() / "pydantic").is_dir()


def test_the_asset_hash_follows_sources_and_requirements(tmp_path, monkeypatch):
    source = tmp_path / "module.py"
    source.write_text("A = 1\n")
    monkeypatch.setattr(asset, "source_files", lambda package: iter([(f"{package}/m.py", source)]))
    first = asset.asset_hash()
    assert asset.asset_hash() == first
    source.write_text("A = 2\n")
    assert asset.asset_hash() != first
    assert asset.dependencies_key("pydantic==2.0\n") != asset.dependencies_key("pydantic==2.1\n")

