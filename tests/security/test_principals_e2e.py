"""A real worker and its flow processes hold only their own credentials.

The worker is started with the operator's token (the `local` profile): it works with its pool's
token, and each flow process gets a token for its own run. A flow that probes what its
credentials reach runs a subflow, cannot read another run, and can trigger a deployment only
when its worker was granted that deployment.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from e2e.conftest import sluice  # noqa: F401 - the fixture: a fresh installation, server up
from e2e.harness import Sluice, created_id

PROJECT = Path(__file__).parents[1] / "e2e" / "project"


def deploy(sluice: Sluice, flow: str, name: str) -> None:
    sluice.cli("deploy", f"flows.py:{flow}", "--name", name, "--project-dir", str(PROJECT))


def trigger(sluice: Sluice, ref: str, **params: str) -> str:
    args = [f"--param={key}={value}" for key, value in params.items()]
    return created_id(sluice.cli("deployment", "run", ref, *args).stdout)


def events(ledger: Path, run_id: str) -> list[str]:
    if not ledger.exists():
        return []
    return [line.split()[0] for line in ledger.read_text().splitlines()
            if line.split()[1] == run_id]


def test_flow_processes_get_their_runs_token_and_trigger_only_with_a_grant(sluice, tmp_path):
    deploy(sluice, "credentials_probe", "probe")
    deploy(sluice, "child", "target")
    # A run the probe will try to read: another run of the same pool.
    other = trigger(sluice, "child/target", ledger=str(tmp_path / "other-ledger"))
    ledger = tmp_path / "ledger"

    # Given a worker without grants, given its pool's token in its environment
    pool_token = sluice.cli("pool", "token", "default").stdout.strip()
    operator_env = sluice.env
    sluice.env = {**operator_env, "SLUICE_API_TOKEN": pool_token}
    worker = sluice.start_worker("--limit", "3")
    sluice.env = operator_env
    probe = trigger(sluice, "credentials-probe/probe", ledger=str(ledger), other_run=other,
                    trigger="child/target")
    assert sluice.wait_terminal(probe, 90)["state"]["type"] == "COMPLETED"
    seen = events(ledger, probe)
    # Then its flow process held a run token (not the operator's, not the pool's) ...
    assert seen[0] == "token-sluice-run", seen
    # ... and did not find its worker's token in its own environment, nor (unless it is root,
    # who reads every process's) its worker's environment: the worker is undumpable.
    assert "own-environ-clean" in seen, seen
    if os.geteuid() != 0:
        assert "worker-environ-refused" in seen, seen
    # ... ran its subflow, could not read another run, and could not trigger a deployment.
    assert "subflow-child-done" in seen
    assert "read-other-refused-Forbidden" in seen
    assert "trigger-refused-Forbidden" in seen, seen
    worker.stop()

    # Given a worker granted to trigger child/target
    sluice.start_worker("--limit", "3", "--may-trigger", "child/target", name="granted")
    granted = trigger(sluice, "credentials-probe/probe", ledger=str(ledger),
                      trigger="child/target")
    assert sluice.wait_terminal(granted, 90)["state"]["type"] == "COMPLETED"
    assert "trigger-COMPLETED" in events(ledger, granted), events(ledger, granted)
    with sluice.api() as api:
        runs = api.get("/flow-runs", params={"limit": 50}).json()["items"]
    # The other run, both subflows and the triggered run all completed.
    assert [r["state"]["type"] for r in runs if r["flow_name"] == "child"] == ["COMPLETED"] * 4


def test_the_worker_process_is_undumpable_so_same_user_flow_code_cannot_read_it():
    """`hide_from_flows` (called when the worker starts): PR_GET_DUMPABLE answers 0, so a
    process of the same (non-root) user can neither read its /proc/<pid>/environ nor attach."""
    probe = ("import ctypes; from sluice_worker.credentials import hide_from_flows; "
             "hide_from_flows(); print(ctypes.CDLL(None).prctl(3, 0, 0, 0, 0))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.strip() == "0"
