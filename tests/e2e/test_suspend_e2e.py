"""Suspend and resume on a real embedded server with a real worker process (issue 17): a
running flow is suspended, its worker stops the flow process, the stopped attempt's late write
is refused; the resumed run runs again to Completed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from .harness import created_id, wait_for

pytestmark = pytest.mark.e2e
PROJECT = Path(__file__).parent / "suspend_project"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone for our purposes
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


def _history(sluice, run_id: str) -> list[str]:
    """The run's states by name, except a started attempt's, by type (a second attempt runs
    as "Retrying")."""
    with sluice.api() as api:
        states = api.get(f"/flow-runs/{run_id}/history").json()
    return [state["type"] if state["type"] == "RUNNING" else state["name"] for state in states]


def test_a_running_run_is_suspended_stopped_and_resumed_to_completion(sluice, tmp_path):
    # Given a long-running flow running on a worker
    sluice.cli("deploy", "flows.py:long_loop", "--name", "hold", "--project-dir", str(PROJECT))
    worker = sluice.start_worker()
    marker = tmp_path / "first-attempt.json"
    run_id = created_id(sluice.cli("deployment", "run", "long-loop/hold",
                                   f"--param=marker={marker}").stdout)
    first = json.loads(wait_for(lambda: marker.exists() and marker.read_text(), 60,
                                "the flow's first attempt to start"))
    wait_for(lambda: sluice.run_state(run_id)["state"]["type"] == "RUNNING", 30, "Running")

    # When an operator suspends it by its short id
    suspended = sluice.cli("flow-run", "suspend", run_id[-8:], "--message", "db maintenance")

    # Then the CLI says so and how to resume; the worker stops the flow process
    assert "Suspended" in suspended.stdout and "sluice flow-run resume" in suspended.stdout
    wait_for(lambda: not _alive(first["pid"]), 30,
             f"the worker to stop the flow process\n{worker.output()}")
    # and the run stays Suspended (not Crashed, not Late, not run again)
    state = sluice.run_state(run_id)["state"]
    assert (state["name"], state["message"]) == ("Suspended", "db maintenance")
    # The stopped attempt's late write is refused with 409
    with sluice.api() as api:
        late = api.post(f"/flow-runs/{run_id}/state", json={
            "state": {"type": "COMPLETED"}, "lease": first["lease"], "transition_id": "late"})
    assert late.status_code == 409, late.text
    # A second suspend changes nothing
    again = sluice.cli("flow-run", "suspend", run_id)
    assert "already suspended" in again.stdout

    # When it is resumed
    resumed = sluice.cli("flow-run", "resume", run_id)
    assert "Scheduled" in resumed.stdout
    # Then a new attempt runs the flow again, to Completed
    final = sluice.wait_terminal(run_id, 90)
    assert final["state"]["type"] == "COMPLETED", final["state"]
    assert final["run_count"] == 2
    history = _history(sluice, run_id)
    assert history[history.index("Suspended"):] == [
        "Suspended", "Scheduled", "Pending", "RUNNING", "Completed"]

    # A finished run cannot be suspended: 409 with the reason, and the CLI says it
    with sluice.api() as api:
        refused = api.post(f"/flow-runs/{run_id}/suspend", json={})
    assert refused.status_code == 409 and "terminal" in refused.json()["message"]
    cli_refused = sluice.cli("flow-run", "suspend", run_id, check=False)
    assert cli_refused.returncode != 0 and "terminal" in cli_refused.stderr
