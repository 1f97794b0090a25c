"""Attack: a swapped or tampered worker wheel (a poisoned asset bucket, a man in the middle, a
wrong file). The fleet's user data installs Sluice only from the wheel whose SHA-256 the CDK app
baked into it; anything else is refused before pip runs, and the instance powers off (the fleet
then terminates it) instead of joining the group as a worker that runs nothing.

The shipped script runs for real under bash, with every system command it calls replaced by a
stub on PATH that records its arguments (no network, no root, nothing outside tmp_path).
"""

from __future__ import annotations

import hashlib
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

import sluice_worker

SCRIPT = Path(sluice_worker.__file__).parent / "deploy" / "ec2-user-data.sh"
WHEEL = "sluice_flows-0.1.0-py3-none-any.whl"
GENUINE = b"PK\x03\x04 the wheel the CDK app built"
#: What each stub does besides recording its call ("$@" one argument per line, then a blank).
STUBS = {
    "curl": 'echo eu-west-1',
    "dnf": "", "id": "", "useradd": "", "systemctl": "", "install": "", "shutdown": "",
    # `python3.11 -m venv DIR`: a virtualenv whose pip, python and sluice are stubs too.
    "python3.11": 'venv="${@: -1}"; mkdir -p "$venv/bin"\n'
                  'for tool in pip python sluice; do cp "$STUBS/venv-tool" "$venv/bin/$tool"; done',
    # `aws s3 cp ... SOURCE DEST`: the "download" is whatever the test put in $DOWNLOADED.
    "aws": 'cp "$DOWNLOADED" "${@: -1}"',
    # The profile step: the end of what these tests follow (it exits the script non-zero).
    "sudo": 'exit 97',
}


@dataclass
class Boot:
    status: int
    output: str
    log: Path

    def calls(self, command: str) -> list[list[str]]:
        path = self.log / command
        if not path.exists():
            return []
        return [call.split("\n") for call in path.read_text().split("\n\n") if call]


@pytest.fixture
def boot(tmp_path):
    """Runs the shipped user data with `settings` exported before it, as the fleet does."""
    stubs, log, install_dir = tmp_path / "stubs", tmp_path / "log", tmp_path / "opt-sluice"
    stubs.mkdir()
    log.mkdir()
    for name, body in {**STUBS, "venv-tool": ""}.items():
        stub = stubs / name
        log_name = '"venv-$(basename "$0")"' if name == "venv-tool" else name
        stub.write_text(f'#!/bin/bash\nprintf "%s\\n" "$@" "" >> "$STUB_LOG/"{log_name}\n{body}\n')
        stub.chmod(0o755)

    def run(downloaded: bytes, **settings: str) -> Boot:
        (tmp_path / "downloaded").write_bytes(downloaded)
        environment = {"PATH": f"{stubs}:/usr/bin:/bin", "STUB_LOG": str(log), "STUBS": str(stubs),
                       "DOWNLOADED": str(tmp_path / "downloaded"),
                       "SLUICE_INSTALL_DIR": str(install_dir), **settings}
        done = subprocess.run(["bash", str(SCRIPT)], env=environment, capture_output=True,
                              text=True, timeout=60)
        return Boot(done.returncode, done.stdout + done.stderr, log)

    return run


def _fleet_settings(sha256: str) -> dict[str, str]:
    return {"SLUICE_STACK": "Sluice", "SLUICE_POOL": "etl", "SLUICE_LIMIT": "2",
            "SLUICE_POWER_OFF_ON_FAILURE": "true",
            "SLUICE_WHEEL_S3_URL": "s3://cdk-assets/0123abcd.whl", "SLUICE_WHEEL_FILE": WHEEL,
            "SLUICE_WHEEL_SHA256": sha256}


def test_a_tampered_wheel_is_never_installed_and_the_instance_powers_off(boot, tmp_path):
    # Given user data that pins the genuine wheel's hash, and a download that is not that wheel
    settings = _fleet_settings(hashlib.sha256(GENUINE).hexdigest())
    # When the instance boots
    result = boot(b"PK\x03\x04 someone else's code", **settings)
    # Then the bootstrap fails at the hash check: pip never ran, no worker was started
    assert result.status != 0
    assert "FAILED" in result.output  # sha256sum's verdict, in the console output
    assert result.calls("venv-pip") == [] and result.calls("venv-python") == []
    assert result.calls("systemctl") == [] and result.calls("sudo") == []
    # And the instance powers off, so the group replaces it
    assert result.calls("shutdown") == [["-h", "now"]]
    assert "worker bootstrap failed" in result.output


def test_the_genuine_wheel_is_installed_as_that_file_never_by_name(boot, tmp_path):
    # Given the download is the wheel whose hash the user data pins
    result = boot(GENUINE, **_fleet_settings(hashlib.sha256(GENUINE).hexdigest()))
    # Then pip installs exactly that file with the worker extra, and nothing by name
    wheel = tmp_path / "opt-sluice" / WHEEL
    assert result.calls("venv-pip") == [["install", "--quiet", f"{wheel}[worker]"]]
    assert wheel.read_bytes() == GENUINE
    (download,) = result.calls("aws")
    assert download[:2] == ["s3", "cp"] and download[-2:] == ["s3://cdk-assets/0123abcd.whl",
                                                               str(wheel)]
    # And the worker's import is checked before anything starts it
    assert result.calls("venv-python") == [["-c", "import boto3, sluice_worker.worker"]]


def test_any_later_failure_powers_the_instance_off_too(boot):
    # Given a good wheel, but the profile step fails (the `sudo` stub exits 97)
    result = boot(GENUINE, **_fleet_settings(hashlib.sha256(GENUINE).hexdigest()))
    # Then no worker unit is started and the instance powers off
    assert result.status == 97
    assert result.calls("systemctl") == []
    assert result.calls("shutdown") == [["-h", "now"]]


@pytest.mark.parametrize(("settings", "complaint"), [
    ({}, "nothing to install"),
    ({"SLUICE_WHEEL_S3_URL": "s3://b/k.whl", "SLUICE_WHEEL_FILE": WHEEL}, "SHA256 is required"),
    ({"SLUICE_WHEEL_S3_URL": "s3://b/k.whl", "SLUICE_WHEEL_FILE": "evil.sh",
      "SLUICE_WHEEL_SHA256": "0" * 64}, "must be the wheel's file name"),
])
def test_without_a_pinned_wheel_or_an_explicit_requirement_nothing_is_installed(
        boot, settings, complaint):
    result = boot(GENUINE, SLUICE_POWER_OFF_ON_FAILURE="true", **settings)
    assert result.status != 0 and complaint in result.output
    assert result.calls("aws") == [] and result.calls("venv-pip") == []
    assert result.calls("shutdown") == [["-h", "now"]]


def test_an_explicit_requirement_is_installed_as_given(boot):
    result = boot(b"", SLUICE_REQUIREMENT="sluice-flows[worker]==0.1.0")
    assert result.calls("venv-pip") == [["install", "--quiet", "sluice-flows[worker]==0.1.0"]]
    assert result.calls("aws") == []


def test_by_hand_a_failure_does_not_power_the_host_off(boot):
    # Given the script run by hand (on-prem): no SLUICE_POWER_OFF_ON_FAILURE
    result = boot(b"tampered", **{k: v for k, v in _fleet_settings("0" * 64).items()
                                  if k != "SLUICE_POWER_OFF_ON_FAILURE"})
    # Then it fails loudly, installs nothing, and leaves the machine running
    assert result.status != 0 and "worker bootstrap failed" in result.output
    assert result.calls("venv-pip") == [] and result.calls("shutdown") == []


def test_the_stubs_shadow_every_command_that_could_touch_the_machine():
    # The script's external commands that change the host are all stubbed in these tests.
    text = SCRIPT.read_text()
    for command in ("shutdown", "systemctl", "useradd", "dnf", "aws", "curl", "sudo", "install"):
        assert command in text and command in STUBS, command
