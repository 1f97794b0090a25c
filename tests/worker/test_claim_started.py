"""Issue 20 on the worker side: the claim's answer (a started run, its deployment) is handed to
the flow process, which then needs no request to read its run, its deployment, or to report
the Running the claim already wrote."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from sluice.models import (
    CodeSource,
    Deployment,
    FlowRun,
    Pending,
    Retrying,
    Running,
    SetStateResponse,
    StateType,
    TransitionStatus,
)
from sluice.profiles import Connection
from sluice_worker.claim_started import (
    ENV_FLOW_RUN,
    ClaimStartedReporter,
    claimed_flow_run,
    reporter_for,
)
from sluice_worker.run_command import MAX_FLOW_RUN_ENV_BYTES, flow_process_command


class Plane:
    """The client as the flow process sees it: records each state request."""

    def __init__(self) -> None:
        self.connection = Connection(api_url="http://fake")
        self.states: list[str] = []
        self.deployments_read = 0

    def set_flow_run_state(self, flow_run_id, state, transition_id, lease=None):
        self.states.append(state.name)
        return SetStateResponse(status=TransitionStatus.ACCEPT, state=state)

    def get_deployment(self, deployment_id):
        self.deployments_read += 1
        return a_deployment(deployment_id)


def a_deployment(deployment_id: str = "dep-1") -> Deployment:
    return Deployment(id=deployment_id, flow_name="etl", name="nightly",
                      entrypoint="flows.py:etl", pool="default",
                      source=CodeSource(kind="local", path="/srv/code"))


def a_run(state=None) -> FlowRun:
    return FlowRun(id="fr-1", flow_name="etl", name="run", state=state or Running(),
                   deployment_id="dep-1", run_count=1)


class TestTheFlowProcess:
    def test_the_first_running_of_a_started_run_needs_no_request(self):
        # Given a run the claim started
        plane, run = Plane(), a_run()
        reporter = reporter_for(plane, run, from_claim=True)
        assert isinstance(reporter, ClaimStartedReporter)
        # When the engine proposes Running, then an in-process retry's Running, then the end
        first = reporter.set_flow_run_state(run, Running(), "t1")
        reporter.set_flow_run_state(run, Retrying(), "t2")
        # Then only the retry's Running reached the control plane
        assert first is run.state and plane.states == ["Retrying"]
        reporter.close(timeout=0)

    def test_a_pending_run_reports_its_running_as_before(self):
        plane, run = Plane(), a_run(Pending())
        reporter = reporter_for(plane, run, from_claim=True)
        reporter.set_flow_run_state(run, Running(), "t1")
        assert plane.states == ["Running"]
        reporter.close(timeout=0)

    def test_a_run_read_from_the_control_plane_is_not_taken_as_started(self):
        plane, run = Plane(), a_run()
        reporter = reporter_for(plane, run, from_claim=False)
        reporter.set_flow_run_state(run, Running(), "t1")
        assert plane.states == ["Running"]
        reporter.close(timeout=0)

    def test_the_claimed_run_is_read_from_the_environment(self, monkeypatch):
        run = a_run()
        monkeypatch.setenv(ENV_FLOW_RUN, run.model_dump_json())
        assert claimed_flow_run("fr-1") == run
        assert claimed_flow_run("another-run") is None  # never another run's
        monkeypatch.setenv(ENV_FLOW_RUN, "{not json")
        assert claimed_flow_run("fr-1") is None
        monkeypatch.delenv(ENV_FLOW_RUN)
        assert claimed_flow_run("fr-1") is None


class FakeCode:
    def directory(self, source, *, entrypoint=None, holder=None) -> Path:
        return Path("/srv/code")

    def python_for(self, code_dir, requirements, *, holder=None) -> str:
        return "python3"


def a_worker(plane: Plane) -> SimpleNamespace:
    plane.connection = SimpleNamespace(api_url="http://fake", kind="server", api_token=None,
                                       region=None, ca_bundle=None)
    return SimpleNamespace(client=plane, code=FakeCode(), pool="default")


class TestTheWorkersCommand:
    def test_the_claims_deployment_and_run_are_handed_over(self):
        # Given a claim answer that carried the deployment (JSON, as on the wire)
        plane = Plane()
        run = json.loads(a_run().model_dump_json())
        deployment = json.loads(a_deployment().model_dump_json())
        # When the worker builds the flow process's command
        _, _, env = flow_process_command(a_worker(plane), run, flow_run_id="fr-1",
                                         lease="lease-1", holder=None, deployment=deployment)
        # Then it read no deployment, and the process finds its run in its environment
        assert plane.deployments_read == 0
        assert FlowRun.model_validate_json(env[ENV_FLOW_RUN]).state.type is StateType.RUNNING

    def test_without_the_deployment_in_the_answer_it_is_read(self):
        plane = Plane()
        run = json.loads(a_run().model_dump_json())
        flow_process_command(a_worker(plane), run, flow_run_id="fr-1", lease="lease-1",
                             holder=None)
        assert plane.deployments_read == 1

    def test_a_run_too_large_for_the_environment_is_read_by_the_process(self):
        plane = Plane()
        run = json.loads(a_run().model_dump_json())
        run["parameters"] = {"blob": "x" * MAX_FLOW_RUN_ENV_BYTES}
        _, _, env = flow_process_command(a_worker(plane), run, flow_run_id="fr-1",
                                         lease="lease-1", holder=None)
        assert ENV_FLOW_RUN not in env


@pytest.fixture(autouse=True)
def _no_handed_run(monkeypatch):
    monkeypatch.delenv(ENV_FLOW_RUN, raising=False)


class PlaneBeforeStarts:
    """A control plane from before `start`/`with_deployment`: refuses them as unknown fields."""

    def __init__(self) -> None:
        self.claims: list[dict] = []

    def claim_flow_run(self, flow_run_id, worker, **options):
        self.claims.append(options)
        if options.get("start") or options.get("with_deployment"):
            from sluice import exceptions as errors

            raise errors.ValidationError("body.start: Extra inputs are not permitted",
                                         details=[{"loc": ["body", "start"]}])
        return "lease"


def test_a_worker_claims_pending_once_an_older_control_plane_refuses_start():
    # Given a worker and a control plane that does not know `start`
    from sluice.models import RunMessage
    from sluice_worker.supervisor import RunSupervisor
    from sluice_worker.worker import Worker

    plane = PlaneBeforeStarts()
    worker = Worker(plane, None, pool="default", name="w1", code=None, reporter=None,
                    standby=False)
    body = RunMessage(flow_run_id="fr-1", pool="default", attempt=0)
    message = {"MessageId": "m-1", "Body": body.model_dump_json(), "ReceiptHandle": "r-1"}
    # When it claims twice, Then the first refusal turns start off for good
    assert RunSupervisor(worker, message)._claim(body) == "lease"
    assert RunSupervisor(worker, {**message, "MessageId": "m-2"})._claim(body) == "lease"
    assert [bool(c.get("start")) for c in plane.claims] == [True, False, False]
    assert worker.claim_starts_supported is False
