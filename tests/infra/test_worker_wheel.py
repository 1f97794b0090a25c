"""The worker fleet installs the wheel this app built from the tree, shipped as an S3 asset and
pinned by its SHA-256; the wheel build is reproducible and cached; the user data stays sane."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from aws_cdk import App

import sluice
import sluice_worker
from sluice.exceptions import ConfigurationError
from sluice_infra import worker_wheel as wheels
from sluice_infra.app import build_stack
from sluice_infra.workers import ShippedWheel, WorkerFleet, worker_user_data

from .conftest import FULL_STACK
from .template_reading import flat, policy_of_role
from .test_observability_and_fleet import _user_data

#: EC2 user data is at most 16 KB before base64:
#: https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/user-data.html
MAX_USER_DATA_BYTES = 16 * 1024
SCRIPT = Path(sluice_worker.__file__).parent / "deploy" / "ec2-user-data.sh"
WHEEL_NAME = f"sluice_flows-{sluice.__version__}-py3-none-any.whl"
#: A pip install of the unrelated `sluice` distribution (not sluice-flows, not sluice_worker).
INSTALLS_SLUICE = re.compile(r"pip install[^\n]*?['\"\s]sluice(?![\w-])|(?<![\w-])sluice\[")


def _exports(script: str) -> dict[str, str]:
    return dict(re.findall(r"^export (\w+)=(.*)$", script, flags=re.MULTILINE))


@pytest.fixture
def fleet_script(synthesized) -> str:
    _, template = synthesized.only("AWS::EC2::LaunchTemplate", FULL_STACK)
    return _user_data(template)


@pytest.fixture
def wheel_asset(synthesized) -> dict:
    """The assets manifest's entry of the wheel (source file in cdk.out, S3 destination)."""
    manifest = json.loads((synthesized.outdir / "full" / f"{FULL_STACK}.assets.json").read_text())
    (entry,) = [a for a in manifest["files"].values() if a["source"]["path"].endswith(".whl")]
    return entry


def test_the_user_data_downloads_the_shipped_asset_and_pins_its_hash(fleet_script, wheel_asset,
                                                                      synthesized):
    exports = _exports(fleet_script)
    (destination,) = wheel_asset["destinations"].values()
    assert exports["SLUICE_WHEEL_S3_URL"] == \
        f"s3://{destination['bucketName']}/{destination['objectKey']}".replace("${", "<") \
        .replace("}", ">")
    staged = synthesized.outdir / "full" / wheel_asset["source"]["path"]
    assert exports["SLUICE_WHEEL_SHA256"] == wheels.sha256_of(staged)
    assert exports["SLUICE_WHEEL_FILE"] == WHEEL_NAME
    assert "SLUICE_REQUIREMENT" not in exports
    assert not INSTALLS_SLUICE.search(fleet_script)


def test_the_shipped_wheel_is_the_one_built_from_this_tree(fleet_script, tmp_path):
    # Given a wheel built now from the tree, without the cache
    built = wheels.build_wheel(wheels.project_root(), tmp_path / "fresh")
    # Then the fleet pins exactly its bytes, under its name
    exports = _exports(fleet_script)
    assert (exports["SLUICE_WHEEL_FILE"], exports["SLUICE_WHEEL_SHA256"]) == \
        (built.filename, built.sha256)
    # And it is Sluice's worker: our distribution name, the worker with its deploy files
    with zipfile.ZipFile(built.path) as archive:
        listing = archive.namelist()
    assert f"sluice_flows-{sluice.__version__}.dist-info/METADATA" in listing
    assert {"sluice_worker/worker.py", "sluice_worker/deploy/sluice-worker.service",
            "sluice/__init__.py"} <= set(listing)


def test_instances_may_read_the_wheel_object_and_nothing_else_of_the_assets_bucket(
        synthesized, wheel_asset):
    template = synthesized.template(FULL_STACK)
    (role_id,) = [i for i, r in synthesized.resources("AWS::IAM::Role", FULL_STACK).items()
                  if "ec2.amazonaws.com" in json.dumps(r["Properties"]["AssumeRolePolicyDocument"])]
    # Besides the fleet's trigger grant (tests/infra/test_iam_matrix.py), only the wheel:
    (statement,) = [s for s in policy_of_role(template, role_id)
                    if s["Action"] != "execute-api:Invoke"]
    (destination,) = wheel_asset["destinations"].values()
    bucket = destination["bucketName"].replace("${", "<").replace("}", ">")
    assert statement["Action"] == "s3:GetObject"
    assert flat(statement["Resource"]) == \
        f"arn:<AWS::Partition>:s3:::{bucket}/{destination['objectKey']}"
    # The group (so its first instances) waits for that grant.
    (_, group) = synthesized.only("AWS::AutoScaling::AutoScalingGroup", FULL_STACK)
    (policy_id,) = [i for i, r in template["Resources"].items()
                    if r["Type"] == "AWS::IAM::Policy" and r["Properties"]["Roles"] ==
                    [{"Ref": role_id}]]
    assert policy_id in group["DependsOn"]


def test_a_requirement_replaces_the_wheel_when_asked():
    # Given a fleet that installs from the user's own index
    fleet = WorkerFleet(sluice_requirement="sluice-flows[worker]==0.1.0")
    # When its user data is rendered (no asset: nothing to build or upload)
    script = worker_user_data("Sluice", fleet).render()
    exports = _exports(script)
    # Then it installs that requirement, and still powers off on a failed bootstrap
    assert exports["SLUICE_REQUIREMENT"] == "'sluice-flows[worker]==0.1.0'"
    assert exports["SLUICE_POWER_OFF_ON_FAILURE"] == "true"
    assert not any(name.startswith("SLUICE_WHEEL") for name in exports)


def test_user_data_needs_something_to_install():
    with pytest.raises(ConfigurationError, match="shipped wheel or fleet.sluice_requirement"):
        worker_user_data("Sluice", WorkerFleet())


def test_the_user_data_is_valid_bash_and_fits_ec2s_limit(tmp_path):
    wheel = ShippedWheel(s3_url="s3://bucket/" + "a" * 64 + ".whl", filename=WHEEL_NAME,
                         sha256="b" * 64)
    script = worker_user_data("A" * 128, WorkerFleet(pool="p" * 60), wheel).render()
    rendered = tmp_path / "user-data.sh"
    rendered.write_text(script)
    subprocess.run(["bash", "-n", str(rendered)], check=True)
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    assert len(script.encode()) < MAX_USER_DATA_BYTES


def _project_copy(tmp_path: Path) -> Path:
    root = wheels.project_root()
    copy = tmp_path / "project"
    for name, path in wheels._input_files(root):
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, copy / name)
    return copy


def test_wheels_are_reproducible_and_cached_by_content(tmp_path, monkeypatch):
    # Given a copy of the project and an empty cache
    project, cache = _project_copy(tmp_path), tmp_path / "cache"
    first = wheels.worker_wheel(project, cache)
    # When the wheel is asked for again, nothing is built
    monkeypatch.setattr(wheels, "build_wheel", lambda *_: pytest.fail("rebuilt"))
    assert wheels.worker_wheel(project, cache) == first
    monkeypatch.undo()
    # And a rebuild from the same sources gives the same bytes
    assert wheels.build_wheel(project, tmp_path / "again").sha256 == first.sha256
    # When a source file changes, the wheel is rebuilt with another hash
    module = project / "worker" / "sluice_worker" / "worker.py"
    module.write_text(module.read_text() + "\n# changed\n")
    changed = wheels.worker_wheel(project, cache)
    assert changed.sha256 != first.sha256 and changed.path != first.path
    # And the project's tree got no build leftovers
    assert not list(project.glob("build")) and not list(project.rglob("*.egg-info"))


def test_a_project_without_sources_says_what_to_pass_instead(tmp_path, monkeypatch):
    monkeypatch.setattr(wheels, "package_dir", lambda _: tmp_path / "site" / "sluice_infra")
    with pytest.raises(ConfigurationError, match=r"sluice_wheel=.*sluice_requirement="):
        wheels.project_root()


def test_a_given_wheel_must_be_a_wheel_file(tmp_path):
    with pytest.raises(ConfigurationError, match="is not a .whl file"):
        WorkerFleet(sluice_wheel=tmp_path / "missing.whl")
    with pytest.raises(ConfigurationError, match="not both"):
        WorkerFleet(sluice_wheel=tmp_path / "x.whl", sluice_requirement="sluice-flows")


def test_the_app_checks_a_given_wheel_before_creating_anything(tmp_path):
    app = App(context={"sluice:workerFleet": "true",
                       "sluice:workerSluiceWheel": str(tmp_path / "nowhere.whl")})
    with pytest.raises(ValueError, match="is not a .whl file"):
        build_stack(app)
    assert app.node.children == []
