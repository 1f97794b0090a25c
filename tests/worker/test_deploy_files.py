"""The worker's deploy files ship with the package and are well-formed."""

from __future__ import annotations

import configparser
import subprocess
from pathlib import Path

import sluice_worker

DEPLOY = Path(sluice_worker.__file__).parent / "deploy"


def test_systemd_unit_runs_the_worker_and_stops_gracefully():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read(DEPLOY / "sluice-worker.service")
    service = unit["Service"]
    assert "sluice worker start" in service["ExecStart"]
    assert service["KillSignal"] == "SIGTERM" and int(service["TimeoutStopSec"]) > 30
    assert service["Restart"] == "always"
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_user_data_is_valid_bash_and_installs_the_unit():
    script = DEPLOY / "ec2-user-data.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text()
    assert "systemctl enable --now sluice-worker" in text
    assert "sluice-worker.service" in text
