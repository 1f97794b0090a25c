"""Issue 20: a flow run's final state rides with its last batch of task runs and logs - one
request, the records first, the same lease fencing and transition id - and an older control
plane that refuses the field gets the old two requests."""

from __future__ import annotations

import json

import pytest

from sluice import exceptions as errors
from sluice.client.reporter import HttpReporter
from sluice.models import (
    Completed,
    EventsAccepted,
    EventsBatch,
    FlowRun,
    LogRecord,
    Pending,
    SetStateResponse,
    TaskRun,
    TransitionStatus,
    new_id,
    utcnow,
)
from sluice.profiles import Connection


class StatefulApi:
    """Stands in for SluiceClient with a control plane that applies a batch's state."""

    def __init__(self, *, takes_states: bool = True) -> None:
        self.connection = Connection(api_url="http://fake")
        self.takes_states = takes_states
        self.requests: list[tuple[str, dict]] = []
        self.transition_ids: set[str] = set()
        self.stale = False
        self.fail_first = 0

    def set_flow_run_state(self, flow_run_id, state, transition_id, lease=None):
        self.requests.append(("state", {"state": state.name, "lease": lease}))
        return SetStateResponse(status=TransitionStatus.ACCEPT, state=state)

    def send_events(self, flow_run_id, batch, attempts=None):
        if self.fail_first:
            self.fail_first -= 1
            raise errors.ServiceUnavailable("down")
        body = json.loads(batch)
        if self.stale:
            raise errors.StaleLease("the run is held by a newer attempt")
        if "state" in body and not self.takes_states:
            raise errors.ValidationError("body.state: Extra inputs are not permitted",
                                         details=[{"loc": ["body", "state"]}])
        parsed = EventsBatch.model_validate(body)  # the wire shape the API takes
        self.requests.append(("events", body))
        transition = None
        if parsed.state is not None:
            repeated = parsed.transition_id in self.transition_ids
            self.transition_ids.add(parsed.transition_id)
            transition = SetStateResponse(status=TransitionStatus.ACCEPT, state=parsed.state,
                                          reason="repeated" if repeated else None)
        return EventsAccepted(task_runs=len(parsed.task_runs), logs=len(parsed.logs),
                              transition=transition)


def a_run() -> FlowRun:
    return FlowRun(id=new_id(), flow_name="f", name="r", state=Pending())


def a_reporter(api: StatefulApi, run: FlowRun) -> HttpReporter:
    reporter = HttpReporter(api, flush_interval=3600)  # nothing leaves before the end
    reporter.adopted.add(run.id)
    reporter.leases[run.id] = "lease-0123456789abcdef"
    return reporter


def buffer_records(reporter: HttpReporter, run: FlowRun, count: int = 3) -> None:
    for n in range(count):
        reporter.report_task_run(TaskRun(id=f"t{n}", flow_run_id=run.id, task_name="t",
                                         name=f"t-{n}", state=Completed(), version=2))
        reporter.report_log(LogRecord(id=f"l{n}", flow_run_id=run.id, timestamp=utcnow(),
                                      message=f"line {n}"))


def test_the_final_state_rides_with_the_last_batch_after_its_records():
    # Given a run with buffered task runs and logs
    api, run = StatefulApi(), a_run()
    reporter = a_reporter(api, run)
    buffer_records(reporter, run)
    # When the run ends
    state = reporter.set_flow_run_state(run, Completed(), "t-end")
    # Then one request carried the records, the lease and the state, and no state request
    assert state.type.value == "COMPLETED"
    assert [kind for kind, _ in api.requests] == ["events"]
    body = api.requests[0][1]
    assert len(body["task_runs"] + body.get("finished_task_runs", [])) == 3
    assert len(body["logs"]) == 3
    assert body["state"]["type"] == "COMPLETED" and body["transition_id"] == "t-end"
    assert body["lease"] == "lease-0123456789abcdef"
    reporter.close(timeout=1)


def test_an_outage_is_ridden_out_with_the_same_transition_id():
    api, run = StatefulApi(), a_run()
    api.fail_first = 2
    reporter = a_reporter(api, run)
    buffer_records(reporter, run)
    reporter.set_flow_run_state(run, Completed(), "t-end")
    assert [kind for kind, _ in api.requests] == ["events"]
    assert api.transition_ids == {"t-end"}
    reporter.close(timeout=1)


def test_a_stale_lease_aborts_the_run():
    # Given an attempt that lost its run
    api, run = StatefulApi(), a_run()
    api.stale = True
    reporter = a_reporter(api, run)
    buffer_records(reporter, run)
    # When it reports its end, Then it is told to stop
    with pytest.raises(errors.RunAborted):
        reporter.set_flow_run_state(run, Completed(), "t-end")
    reporter.close(timeout=0)


def test_an_older_control_plane_gets_the_records_then_the_state_request():
    # Given a control plane that refuses a state in a batch
    api, run = StatefulApi(takes_states=False), a_run()
    reporter = a_reporter(api, run)
    buffer_records(reporter, run)
    # When the run ends
    state = reporter.set_flow_run_state(run, Completed(), "t-end")
    # Then the records are delivered first, then the state, and the reporter remembers
    assert state.type.value == "COMPLETED"
    kinds = [kind for kind, _ in api.requests]
    assert kinds[-1] == "state" and "events" in kinds
    delivered = [t["id"] for kind, body in api.requests if kind == "events"
                 for t in body["task_runs"] + body.get("finished_task_runs", [])]
    assert sorted(delivered) == ["t0", "t1", "t2"]
    assert reporter.final_state_in_batch is False
    reporter.close(timeout=1)
