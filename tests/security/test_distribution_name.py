"""Attack: a look-alike package. `sluice` on PyPI is an unrelated project, so anything that
installs Sluice by that name installs someone else's code. Sluice's distribution is
`sluice-flows`; nothing we ship tells anyone to install `sluice`, and a worker fleet refuses a
requirement that names it."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from aws_cdk import App, CfnResource

import sluice
from sluice.exceptions import ConfigurationError
from sluice_infra.app import build_stack
from sluice_infra.worker_wheel import DISTRIBUTION_NAME, refuse_unrelated_distribution
from sluice_infra.workers import WorkerFleet

ROOT = Path(__file__).resolve().parents[2]
#: Everything a user reads or runs (tests are not shipped).
SHIPPED = ("README.md", "Makefile", "pyproject.toml", "cdk.json", "sdk", "functions", "worker",
           "infra", "docs", "examples", "bench")
SHIPPED_SUFFIXES = {".py", ".md", ".sh", ".service", ".toml", ".txt", ".json", ""}
#: `pip install sluice`, `pip install 'sluice[worker]'`, `sluice[...]`, `sluice==`: the
#: unrelated distribution (sluice-flows, sluice_worker and `import sluice` do not match).
INSTALLS_SLUICE = re.compile(
    r"pip3? install[^\n]*?[\s'\"]sluice(?![\w-])|(?<![\w./])sluice(?:\[|\s*[=~<>!]=)")


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_the_distribution_is_sluice_flows_and_the_import_package_sluice():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["name"] == DISTRIBUTION_NAME == "sluice-flows"
    assert project["version"] == sluice.__version__
    # Installed under that name (what importlib.metadata and pip see), the old one gone.
    assert metadata.version(DISTRIBUTION_NAME) == sluice.__version__
    assert DISTRIBUTION_NAME in metadata.packages_distributions().get("sluice", [])
    with pytest.raises(metadata.PackageNotFoundError):
        metadata.distribution("sluice")


def test_no_requirement_of_the_project_names_the_unrelated_distribution():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        requirements += extra
    names = [_normalized(re.match(r"[A-Za-z0-9._-]+", r).group()) for r in requirements]
    assert "sluice" not in names
    # The dev extra pulls the other extras through our own name.
    assert "sluice-flows[worker,server,infra,dask]" in project["optional-dependencies"]["dev"]


def _shipped_files():
    for name in SHIPPED:
        path = ROOT / name
        candidates = [path] if path.is_file() else sorted(path.rglob("*"))
        for candidate in candidates:
            if candidate.is_file() and candidate.suffix in SHIPPED_SUFFIXES and \
                    "__pycache__" not in candidate.parts and "node_modules" not in candidate.parts:
                yield candidate


def test_no_shipped_file_tells_users_to_install_sluice():
    files = list(_shipped_files())
    assert len(files) > 50  # the scan itself reaches the tree
    found = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
             for path in files
             for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
             if INSTALLS_SLUICE.search(line)]
    assert found == []


def test_the_scan_would_catch_the_old_instructions():
    for line in ("pip install 'sluice[worker]'", "pip install sluice", "sluice[worker]==0.1.0",
                 'SLUICE_VERSION="${SLUICE_VERSION:-sluice[worker]}"', "pip install sluice==0.3"):
        assert INSTALLS_SLUICE.search(line), line
    for line in ("pip install 'sluice-flows[worker]'", "import sluice", "sluice worker start",
                 "sluice_worker/deploy", "pip install -e '.[dev]'"):
        assert not INSTALLS_SLUICE.search(line), line


@pytest.mark.parametrize("requirement", [
    "sluice[worker]==0.1.0", "sluice", "Sluice==0.3.1", "SLUICE_[worker]", " sluice >=0.1",
    "sluice @ https://example.com/sluice-0.3.1.tar.gz", "sluice.[worker]",
])
def test_a_fleet_refuses_a_requirement_naming_the_unrelated_distribution(requirement):
    # When a fleet is asked to install `sluice` by name
    with pytest.raises(ConfigurationError, match="unrelated project on PyPI.*sluice-flows"):
        WorkerFleet(sluice_requirement=requirement)


def test_the_app_refuses_it_before_creating_anything():
    # Given the app's context asking the fleet for `sluice[worker]`
    app = App(context={"sluice:workerFleet": "true",
                       "sluice:workerSluiceRequirement": "sluice[worker]==0.3.1"})
    # When the stack is built, Then it is refused and no stack or resource exists
    with pytest.raises(ValueError, match="unrelated project"):
        build_stack(app)
    assert app.node.children == []
    assert [c for c in app.node.find_all() if isinstance(c, CfnResource)] == []


@pytest.mark.parametrize("requirement", [
    "sluice-flows[worker]==0.1.0", "sluice_flows[worker]", "sluice-flows @ https://x/y.whl",
])
def test_our_own_distribution_from_an_index_is_the_users_choice(requirement):
    refuse_unrelated_distribution(requirement)
    assert WorkerFleet(sluice_requirement=requirement).sluice_requirement == requirement


def test_an_empty_requirement_is_refused_with_the_fix():
    with pytest.raises(ConfigurationError, match="leave it unset"):
        WorkerFleet(sluice_requirement="  ")
