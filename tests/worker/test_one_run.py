"""`run_one` (what Lambda and Fargate pools run per flow run) against a real embedded server:
it claims, runs the flow in a subprocess, heartbeats, honours cancel and a deadline, and
leaves alone a run that is not its own."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from sluice.client import get_client
from sluice_worker.credentials import pool_client
from sluice_worker.one_run import run_one
from sluice_worker.supervisor import RunSettings

from e2e.harness import Sluice, created_id, free_port, wait_for

pytestmark = pytest.mark.e2e
PROJECT = Path(__file__).parent.parent / "e2e" / "project"
POOL = "one-run"
FAST = RunSettings(heartbeat_interval=0.5, cancel_grace=2.0)


@pytest.fixture(scope="module")
def plane(tmp_path_factory):
    """An embedded server with the test project's flows deployed to pool `one-run` (no worker:
    the runs wait in its queue for `run_one`)."""
    installation = Sluice(tmp_path_factory.mktemp("one-run") / "home", free_port())
    installation.start_server()
    installation.cli("pool", "create", POOL)
    for flow, name in (("ledger_flow", "ledger"), ("slow_flow", "slow")):
        installation.cli("deploy", f"flows.py:{flow}", "--name", name, "--pool", POOL,
                         "--project-dir", str(PROJECT))
    yield installation
    installation.close()


@pytest.fixture
def client(plane):
    api = pool_client(get_client(api_url=plane.url, api_token=plane.token), POOL)
    yield api
    api.close()


def trigger(plane: Sluice, ref: str, *params: str) -> str:
    return created_id(plane.cli("deployment", "run", ref, *(f"--param={p}" for p in params)).stdout)


def one(client, run_id: str, tmp_path: Path, **options):
    return run_one(client=client, pool=POOL, flow_run_id=run_id, worker_name="fn-1",
                   code_cache_dir=str(tmp_path / "code"), settings=FAST, **options)


def test_a_run_is_claimed_run_and_completed(plane, client, tmp_path):
    # Given a scheduled run of a flow that writes a ledger
    ledger = tmp_path / "ledger"
    run_id = trigger(plane, "ledger-flow/ledger", f"ledger={ledger}")
    # When run_one runs it with the message id as claim id
    outcome = one(client, run_id, tmp_path, claim_id="message-1")
    # Then it ran once in a subprocess and ended Completed, with its task runs reported
    assert outcome.claimed and (outcome.state_type, outcome.state_name) == ("COMPLETED",
                                                                              "Completed")
    assert [line.split()[0] for line in ledger.read_text().splitlines()] == ["start", "end"]
    detail = plane.cli_json("flow-run", "inspect", run_id)
    assert detail["flow_run"]["worker"] == "fn-1" and len(detail["task_runs"]) == 3


def test_a_cancelled_run_stops_at_its_next_heartbeat(plane, client, tmp_path):
    # Given a long run that run_one is running
    pid_file = tmp_path / "pid"
    run_id = trigger(plane, "slow-flow/slow", f"pid_file={pid_file}", "seconds=120")
    outcomes = []
    runner = threading.Thread(target=lambda: outcomes.append(one(client, run_id, tmp_path)))
    runner.start()
    wait_for(lambda: pid_file.exists() and pid_file.read_text(), 60, "the flow to start")
    # When the run is cancelled
    plane.cli("flow-run", "cancel", run_id)
    runner.join(60)
    # Then run_one stopped the flow process and the run ended Cancelled
    assert not runner.is_alive()
    assert outcomes[0].claimed and outcomes[0].state_name == "Cancelled"
    assert not _alive(int(pid_file.read_text()))


def test_a_run_reaching_its_deadline_ends_timed_out_with_the_message(plane, client, tmp_path):
    # Given a run longer than the time run_one is given
    pid_file = tmp_path / "pid"
    run_id = trigger(plane, "slow-flow/slow", f"pid_file={pid_file}", "seconds=120")
    # When its deadline comes
    outcome = one(client, run_id, tmp_path, deadline=time.monotonic() + 4,
                  deadline_message="stopped at the Lambda pool's 15-minute limit; run it on a "
                  "fargate or worker pool")
    # Then the flow process is gone and the run is TimedOut (a failure) with that message
    assert (outcome.state_type, outcome.state_name) == ("FAILED", "TimedOut")
    state = plane.run_state(run_id)["state"]
    assert state["name"] == "TimedOut" and "fargate or worker pool" in state["message"]
    if pid_file.exists():
        assert not _alive(int(pid_file.read_text()))


def test_a_run_claimed_by_someone_else_is_not_ours(plane, client, tmp_path):
    # Given a run another worker has claimed
    run_id = trigger(plane, "ledger-flow/ledger", f"ledger={tmp_path / 'ledger'}")
    client.claim_flow_run(run_id, "another-worker", claim_id="theirs")
    # When run_one is handed its message
    outcome = one(client, run_id, tmp_path, claim_id="ours")
    # Then it leaves it: not claimed, nothing to retry, and the run is still the other's
    assert (outcome.claimed, outcome.retry, outcome.state_type) == (False, False, None)
    assert plane.run_state(run_id)["worker"] == "another-worker"
    assert not (tmp_path / "ledger").exists()


def test_a_run_whose_lease_is_handed_over_is_run_under_that_lease(plane, client, tmp_path):
    # Given a run claimed by a dispatcher, whose lease the task is given (a Fargate pool)
    ledger = tmp_path / "ledger"
    run_id = trigger(plane, "ledger-flow/ledger", f"ledger={ledger}")
    claim = client.claim_flow_run(run_id, "fn-1", claim_id="dispatcher")
    # When run_one runs it with that lease
    outcome = one(client, run_id, tmp_path, lease=claim.lease)
    # Then it ran to Completed without claiming again; a stale lease is not ours
    assert outcome.claimed and outcome.state_name == "Completed" and ledger.exists()
    again = one(client, run_id, tmp_path, lease=claim.lease)
    assert not again.claimed and not again.retry


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in \
        Path(f"/proc/{pid}/status").read_text().lower()
