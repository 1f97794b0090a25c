"""`sluice worker run-one` against a real embedded server (its own process): the command a
Fargate pool's task runs. It runs a deployed flow's run to its end and exits 0 when the run
completed, 1 when it failed, 0 with a message when the run was not its own; as a task it takes
the run, lease, pool and attempt from the environment its dispatcher set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sluice.client import get_client
from sluice.models import RunMessage
from sluice_worker.credentials import pool_client
from sluice_worker.fargate_dispatch import FargateDispatcher
from sluice_worker.fargate_settings import (
    ENV_ATTEMPT,
    ENV_FLOW_RUN_ID,
    ENV_LEASE,
    ENV_POOL,
    FargateDispatchSettings,
)

from e2e.harness import Sluice, created_id, free_port

pytestmark = pytest.mark.e2e
PROJECT = Path(__file__).parent.parent / "e2e" / "project"
POOL = "tasks"


@pytest.fixture(scope="module")
def plane(tmp_path_factory):
    """An embedded server with the test project's flows deployed to Fargate pool `tasks` (no
    worker: the runs wait in its queue)."""
    installation = Sluice(tmp_path_factory.mktemp("run-one-cli") / "home", free_port())
    installation.start_server()
    installation.cli("pool", "create", POOL, "--type", "fargate")
    for flow, name in (("ledger_flow", "ledger"), ("failing_flow", "fails")):
        installation.cli("deploy", f"flows.py:{flow}", "--name", name, "--pool", POOL,
                         "--project-dir", str(PROJECT))
    yield installation
    installation.close()


def trigger(plane: Sluice, ref: str, *params: str) -> str:
    return created_id(plane.cli("deployment", "run", ref,
                                *(f"--param={p}" for p in params)).stdout)


def run_one(plane: Sluice, tmp_path: Path, *args: str, env: dict[str, str] | None = None):
    return plane.cli("worker", "run-one", "--cache-dir", str(tmp_path / "code"), *args,
                     check=False, timeout=120, env=env)


def state_of(plane: Sluice, run_id: str) -> str:
    return plane.run_state(run_id)["state"]["name"]


class CapturingEcs:
    """Stands in for ECS: keeps the RunTask request (its container overrides are the task's
    environment) instead of starting a container."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    def run_task(self, **request: Any) -> dict[str, Any]:
        self.requests.append(request)
        return {"tasks": [{"taskArn": "arn:aws:ecs:us-east-1:1:task/sluice/1"}], "failures": []}


def test_a_run_given_by_id_is_claimed_run_and_completed(plane, tmp_path):
    # Given a scheduled run of a deployed flow
    ledger = tmp_path / "ledger"
    run_id = trigger(plane, "ledger-flow/ledger", f"ledger={ledger}")
    # When run-one runs it by id (claiming it itself)
    done = run_one(plane, tmp_path, "--pool", POOL, "--flow-run", run_id)
    # Then the flow ran once, the run is Completed and the command exits 0
    assert done.returncode == 0, done.stderr
    assert state_of(plane, run_id) == "Completed"
    assert [line.split()[0] for line in ledger.read_text().splitlines()] == ["start", "end"]


def test_a_fargate_task_runs_the_run_its_dispatcher_claimed_from_its_environment(
        plane, tmp_path):
    # Given a run the pool's dispatcher claimed and asked ECS to start (the lease is in the
    # task's environment, through RunTask's container overrides)
    ledger = tmp_path / "ledger"
    run_id = trigger(plane, "ledger-flow/ledger", f"ledger={ledger}")
    ecs = CapturingEcs()
    client = pool_client(get_client(api_url=plane.url, api_token=plane.token), POOL)
    try:
        dispatcher = FargateDispatcher(client=client, ecs=ecs, settings=FargateDispatchSettings(
            pool=POOL, cluster="sluice", task_definition="sluice-tasks", subnets="subnet-1"))
        assert dispatcher.dispatch("message-1", RunMessage(
            flow_run_id=run_id, pool=POOL).model_dump_json()) == "started"
    finally:
        client.close()
    (override,) = ecs.requests[0]["overrides"]["containerOverrides"]
    task_env = {pair["name"]: pair["value"] for pair in override["environment"]}
    assert set(task_env) == {ENV_FLOW_RUN_ID, ENV_LEASE, ENV_POOL, ENV_ATTEMPT}
    # When the task's command runs with that environment and no arguments about the run
    done = run_one(plane, tmp_path, env=task_env)
    # Then it ran the run under the dispatcher's lease to Completed and exits 0
    assert done.returncode == 0, done.stderr
    assert state_of(plane, run_id) == "Completed"
    assert len(ledger.read_text().splitlines()) == 2


def test_a_failing_run_exits_1(plane, tmp_path):
    # Given a run of a flow that raises
    run_id = trigger(plane, "failing-flow/fails")
    # When run-one runs it
    done = run_one(plane, tmp_path, "--pool", POOL, "--flow-run", run_id)
    # Then the run is Failed and the command exits 1, saying so
    assert done.returncode == 1, done.stderr
    assert state_of(plane, run_id) == "Failed"
    assert "Failed" in done.stderr


def test_a_run_that_is_not_ours_exits_0_with_a_message(plane, tmp_path):
    # Given a run that already ended
    ledger = tmp_path / "ledger"
    run_id = trigger(plane, "ledger-flow/ledger", f"ledger={ledger}")
    assert run_one(plane, tmp_path, "--pool", POOL, "--flow-run", run_id).returncode == 0
    # When run-one is asked to run it again
    done = run_one(plane, tmp_path, "--pool", POOL, "--flow-run", run_id)
    # Then it runs nothing, says why, and exits 0
    assert done.returncode == 0
    assert "not ours to run" in done.stderr
    assert len(ledger.read_text().splitlines()) == 2


def test_without_a_run_to_run_it_names_the_fix(plane, tmp_path):
    done = run_one(plane, tmp_path, env={ENV_POOL: "", ENV_FLOW_RUN_ID: ""})
    assert done.returncode != 0
    assert "--flow-run" in done.stderr and ENV_FLOW_RUN_ID in done.stderr
