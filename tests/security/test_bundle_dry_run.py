"""`sluice deploy --source bundle --dry-run` shows what a bundle would ship (and what the
default exclusions left out, so that nothing is a surprise), and neither uploads nor registers
anything: no control plane is even contacted."""

from __future__ import annotations

import json
import os

import pytest
from typer.testing import CliRunner

from sluice.cli import app
from sluice.cli import deployments as deploy_cli
from sluice.exceptions import ConfigurationError

FLOW = "from sluice import flow\n\n\n@flow\ndef nightly():\n    return 1\n"


@pytest.fixture
def project(tmp_path):
    root = tmp_path / "project"
    (root / ".aws").mkdir(parents=True)
    (root / "flows.py").write_text(FLOW)
    (root / ".env").write_text("TOKEN=do-not-ship\n")
    (root / ".aws" / "credentials").write_text("[default]\n")
    (root / "deploy.pem").write_text("-----BEGIN PRIVATE KEY-----\n")
    return root


@pytest.fixture
def no_control_plane(monkeypatch):
    """Any attempt to build an API client fails the test."""
    def refuse(*_args, **_kwargs):
        raise AssertionError("a dry run contacted the control plane")

    monkeypatch.setattr(deploy_cli, "client", refuse)


def dry_run(project, *extra: str):
    return CliRunner().invoke(app, [
        "deploy", "flows.py:nightly", "--name", "nightly", "--source", "bundle", "--dry-run",
        "--project-dir", str(project), "--api-url", "http://127.0.0.1:9", *extra])


def test_dry_run_lists_files_and_default_exclusions_and_sends_nothing(project,
                                                                     no_control_plane):
    result = dry_run(project)
    assert result.exit_code == 0, result.output
    assert "flows.py" in result.output
    for left_out in (".env", ".aws/", "deploy.pem"):
        assert left_out in result.output
    assert "secret-looking" in result.output
    assert "nothing uploaded, nothing registered" in result.output


def test_dry_run_as_json(project, no_control_plane):
    result = dry_run(project, "--json")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert [f["name"] for f in plan["files"]] == ["flows.py"]
    assert {e["path"] for e in plan["excluded"] if e["secret"]} == {".env", ".aws/",
                                                                    "deploy.pem"}
    assert len(plan["sha256"]) == 64 and plan["zip_bytes"] > 0


def test_dry_run_refuses_a_symlink_out_of_the_project(project, no_control_plane, tmp_path):
    (tmp_path / "elsewhere.txt").write_text("not yours")
    os.symlink(tmp_path / "elsewhere.txt", project / "notes.txt")
    result = dry_run(project)
    # (the `sluice` entry point prints a ConfigurationError and exits 2; here it is raised)
    assert isinstance(result.exception, ConfigurationError)
    assert "notes.txt is a symlink" in str(result.exception)


def test_dry_run_needs_the_bundle_source(project, no_control_plane):
    result = CliRunner().invoke(app, ["deploy", "flows.py:nightly", "--name", "n",
                                      "--dry-run", "--project-dir", str(project)])
    assert isinstance(result.exception, ConfigurationError)
    assert "use it with --source bundle" in str(result.exception)
