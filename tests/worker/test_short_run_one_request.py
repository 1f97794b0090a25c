"""Issue 21: a worker's flow process whose run ends within the reporter's flush interval makes
one request in all - its task runs and every log line (the closing "Finished in state ..."
line too) ride with its final state - while a longer run's log lines still reach the control
plane as it runs, and a final state the control plane does not take as proposed is said so."""

from __future__ import annotations

import json
import threading

from sluice import flow, get_run_logger, task
from sluice.engine import run_flow
from sluice.models import (
    Completed,
    EventsAccepted,
    EventsBatch,
    FlowRun,
    Running,
    SetStateResponse,
    TransitionStatus,
    new_id,
)
from sluice.profiles import Connection
from sluice_worker.claim_started import reporter_for

LEASE = "lease-0123456789abcdef"
#: How long a test waits for the sender thread before it gives up (a failure, not a timing).
PATIENCE = 30.0


class ControlPlane:
    """Stands in for `SluiceClient` as the flow process uses it: records every request, takes
    a batch's final state (or answers it with `answer`), and says when a batch without a state
    carried a given log line."""

    def __init__(self, *, answer: SetStateResponse | None = None) -> None:
        self.connection = Connection(api_url="http://fake")
        self.requests: list[tuple[str, dict]] = []
        self.answer = answer
        self.streamed = threading.Event()
        self.watched_line: str | None = None

    def set_flow_run_state(self, flow_run_id, state, transition_id, lease=None):
        self.requests.append(("state", {"state": state.name}))
        return self.answer or SetStateResponse(status=TransitionStatus.ACCEPT, state=state)

    def send_events(self, flow_run_id, batch, attempts=None):
        body = json.loads(batch)
        parsed = EventsBatch.model_validate(body)  # the wire shape the API takes
        self.requests.append(("events", body))
        if parsed.state is None and any(r.message == self.watched_line for r in parsed.logs):
            self.streamed.set()
        transition = None
        if parsed.state is not None:
            transition = self.answer or SetStateResponse(status=TransitionStatus.ACCEPT,
                                                         state=parsed.state)
        return EventsAccepted(task_runs=len(parsed.task_runs), logs=len(parsed.logs),
                              transition=transition)

    def messages(self, request: dict) -> list[str]:
        return [record["message"] for record in request.get("logs", [])]


def claimed_run() -> FlowRun:
    """A run as the worker hands it over: claimed and started (Running) by the claim."""
    return FlowRun(id=new_id(), flow_name="ten-tasks", name="quick-run", state=Running(),
                   run_count=1)


def flow_process_reporter(plane: ControlPlane, run: FlowRun):
    """The reporter `sluice_worker.execute` sets up for a claimed run."""
    reporter = reporter_for(plane, run, from_claim=True)
    reporter.adopted.add(run.id)
    reporter.leases[run.id] = LEASE
    return reporter


@task
def step(i: int) -> int:
    get_run_logger().info("step %d done", i)
    return 2 * i


@flow
def ten_tasks() -> int:
    return sum(step(i) for i in range(10))


def test_a_short_run_makes_one_request_that_carries_everything_and_its_state():
    # Given the flow process of a claimed run of ten tasks, with the default flush interval
    plane, run = ControlPlane(), claimed_run()
    reporter = flow_process_reporter(plane, run)
    # When the run goes start to end well within that interval
    state = run_flow(ten_tasks, {}, reporter=reporter, flow_run=run)
    reporter.close(timeout=PATIENCE)
    # Then one request went: the ten task runs, every log line - the last one included -
    # and the final state
    assert state.is_completed()
    assert [kind for kind, _ in plane.requests] == ["events"]
    body = plane.requests[0][1]
    assert body["state"]["type"] == "COMPLETED" and body["lease"] == LEASE
    assert len(body.get("task_runs", []) + body.get("finished_task_runs", [])) == 10
    messages = plane.messages(body)
    assert messages[0].startswith("Beginning flow run")
    assert [m for m in messages if m.startswith("step ")] == [f"step {i} done"
                                                              for i in range(10)]
    assert messages[-1] == "Finished in state Completed"


def test_a_longer_run_streams_its_lines_before_it_ends():
    # Given the flow process of a run that logs, then waits for that line to reach the control
    # plane before it ends (the sender's own flush interval, shortened)
    plane, run = ControlPlane(), claimed_run()
    plane.watched_line = "working on it"
    reporter = flow_process_reporter(plane, run)
    reporter.flush_interval = 0.05
    seen_while_running = []

    @flow
    def long_one() -> None:
        get_run_logger().info("working on it")
        seen_while_running.append(plane.streamed.wait(PATIENCE))

    # When it runs
    state = run_flow(long_one, {}, reporter=reporter, flow_run=run)
    reporter.close(timeout=PATIENCE)
    # Then its line went in a batch of its own while it ran, and the state went last with the
    # rest (the closing line among it)
    assert state.is_completed() and seen_while_running == [True]
    kinds = [kind for kind, _ in plane.requests]
    assert kinds[0] == "events" and "state" not in plane.requests[0][1]
    assert "state" in plane.requests[-1][1]
    assert plane.messages(plane.requests[-1][1])[-1] == "Finished in state Completed"


def test_a_final_state_answered_with_another_is_said_so_after_the_end():
    # Given a control plane that records another final state than the one proposed
    recorded = Completed(name="Cached", message="kept from an earlier run")
    plane = ControlPlane(answer=SetStateResponse(status=TransitionStatus.ACCEPT,
                                                 state=recorded))
    run = claimed_run()
    reporter = flow_process_reporter(plane, run)
    # When a short run ends
    state = run_flow(ten_tasks, {}, reporter=reporter, flow_run=run)
    reporter.close(timeout=PATIENCE)
    # Then the run takes the recorded state, and a line after the end names it
    assert state.name == "Cached"
    lines = [m for _, body in plane.requests for m in plane.messages(body)]
    assert "Finished in state Completed" in lines
    assert lines[-1] == "The control plane recorded Cached('kept from an earlier run') instead"


def test_a_refused_final_state_is_said_so_after_the_end():
    # Given a control plane that refuses the final state (another attempt ended the run)
    refused = SetStateResponse(status=TransitionStatus.REJECT, state=Completed(),
                               reason="the run already ended")
    plane, run = ControlPlane(answer=refused), claimed_run()
    reporter = flow_process_reporter(plane, run)
    # When a short run ends
    state = run_flow(ten_tasks, {}, reporter=reporter, flow_run=run)
    reporter.close(timeout=PATIENCE)
    # Then the run stops as refused, and a line after the end says the state was not recorded
    assert state.is_cancelled()
    lines = [m for _, body in plane.requests for m in plane.messages(body)]
    assert lines[-1].startswith("The control plane did not record Completed:")
