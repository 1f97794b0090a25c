"""Issue 20: the HTTP reporter sends a task run whose first record sent is already final in
`EventsBatch.finished_task_runs` (the server may pack those), remembers only the ids it sent
while open, falls back to `task_runs` for good when a control plane refuses the field, and
serializes snapshots taken when the engine reported (never a half-updated record)."""

from __future__ import annotations

import json
import threading

from sluice import exceptions as errors
from sluice.client.batch_bodies import BATCH_BYTES, chunks
from sluice.client.report_buffer import ReportBuffer
from sluice.client.reporter import HttpReporter
from sluice.models import (
    MAX_LOG_MESSAGE_CHARS,
    Completed,
    EventsAccepted,
    EventsBatch,
    FlowRun,
    LogRecord,
    Pending,
    Running,
    TaskRun,
    new_id,
    utcnow,
)
from sluice.profiles import Connection


class CapturingApi:
    """Stands in for SluiceClient: keeps each batch it takes, as the API would parse it.
    `knows_finished=False` answers like a control plane from before the field (422 naming it,
    nothing stored); `down` fails every batch like an outage."""

    def __init__(self, *, knows_finished: bool = True) -> None:
        self.connection = Connection(api_url="http://fake")
        self.knows_finished = knows_finished
        self.down = False
        self.batches: list[dict] = []
        self.refusals = 0

    def send_events(self, flow_run_id, batch, attempts=None):
        body = json.loads(batch)
        if self.down:
            raise errors.ServiceUnavailable("down")
        if "finished_task_runs" in body and not self.knows_finished:
            self.refusals += 1
            raise errors.ValidationError(
                "body.finished_task_runs: Extra inputs are not permitted",
                details=[{"loc": ["body", "finished_task_runs"], "type": "extra_forbidden",
                          "msg": "Extra inputs are not permitted"}])
        EventsBatch.model_validate(body)  # the wire shape the API takes
        self.batches.append(body)
        return EventsAccepted(task_runs=0, logs=0)

    def sent(self, field: str) -> list[tuple[str, str, int]]:
        return [(t["id"], t["state"]["type"], t["version"])
                for body in self.batches for t in body.get(field, [])]


def driven_by_hand(reporter: HttpReporter) -> HttpReporter:
    """A reporter whose sends the test makes itself (`_send_pending`): no sender thread starts,
    so none races the test for the buffer."""
    reporter._thread = threading.current_thread()
    return reporter


def a_task_run(flow_run_id: str = "fr-1", **fields) -> TaskRun:
    return TaskRun(id=new_id(), flow_run_id=flow_run_id, task_name="t", name="t-0",
                   state=Running(), version=1, **fields)


def move(run: TaskRun, state) -> None:
    """What the engine does: new values straight into the run's fields, version bumped."""
    run.__dict__["state"] = state
    run.__dict__["version"] += 1


def test_a_task_run_first_sent_final_goes_as_finished_and_one_sent_open_does_not():
    # Given one task run reported only once it was final, and one sent while still running
    api = CapturingApi()
    reporter = driven_by_hand(HttpReporter(api, flush_interval=3600))  # type: ignore[arg-type]
    quick, slow = a_task_run(), a_task_run()
    move(quick, Completed())
    reporter.report_task_run(quick)
    reporter.report_task_run(slow)
    reporter._send_pending()
    assert reporter.buffer.sent_open == {slow.id}

    # When the slow one ends and is sent
    move(slow, Completed())
    reporter.report_task_run(slow)
    reporter._send_pending()

    # Then the quick one went once in finished_task_runs, the slow one only in task_runs
    assert api.sent("finished_task_runs") == [(quick.id, "COMPLETED", 2)]
    assert api.sent("task_runs") == [(slow.id, "RUNNING", 1), (slow.id, "COMPLETED", 2)]
    # and nothing is remembered once the final records are delivered
    assert reporter.buffer.sent_open == set()


def test_an_older_control_plane_gets_the_batch_again_as_task_runs_and_no_field_after():
    # Given a control plane from before finished_task_runs
    api = CapturingApi(knows_finished=False)
    reporter = driven_by_hand(HttpReporter(api, flush_interval=3600))  # type: ignore[arg-type]
    first = [a_task_run() for _ in range(3)]
    for run in first:
        move(run, Completed())
        reporter.report_task_run(run)

    # When the reporter sends, and later sends more finished task runs
    reporter._send_pending()
    later = a_task_run()
    move(later, Completed())
    reporter.report_task_run(later)
    reporter._send_pending()

    # Then it was refused once, every record arrived once as an ordinary task run
    assert api.refusals == 1
    assert reporter.finished_in_batch is False
    assert sorted(r[0] for r in api.sent("task_runs")) == sorted(r.id for r in [*first, later])
    assert api.sent("finished_task_runs") == []


def test_an_older_control_plane_still_takes_the_final_state_with_the_last_batch():
    # Given a run of this process whose task runs ended, and a control plane without the field
    api = CapturingApi(knows_finished=False)
    transitions: list[str] = []

    def set_state(flow_run_id, state, transition_id, lease=None):  # never called here
        transitions.append(state.name)

    api.set_flow_run_state = set_state  # type: ignore[attr-defined]
    reporter = HttpReporter(api, flush_interval=3600)  # type: ignore[arg-type]
    flow_run = FlowRun(id="fr-1", flow_name="f", state=Pending())
    reporter.adopted.add(flow_run.id)
    runs = [a_task_run() for _ in range(2)]
    for run in runs:
        move(run, Completed())
        reporter.report_task_run(run)

    # When the run ends (the batch carries the state; see final_batch)
    original = api.send_events

    def answer_with_transition(flow_run_id, batch, attempts=None):
        accepted = original(flow_run_id, batch, attempts)
        from sluice.models import SetStateResponse, State, TransitionStatus

        state = State.model_validate(json.loads(batch)["state"])
        accepted.transition = SetStateResponse(status=TransitionStatus.ACCEPT, state=state)
        return accepted

    api.send_events = answer_with_transition  # type: ignore[method-assign]
    ended = reporter.set_flow_run_state(flow_run, Completed(), "t-end")

    # Then one batch landed with the records as task runs and the state; no state request
    assert ended.type.value == "COMPLETED" and transitions == []
    assert [body.get("state", {}).get("type") for body in api.batches] == ["COMPLETED"]
    assert sorted(r[0] for r in api.sent("task_runs")) == sorted(r.id for r in runs)
    assert api.refusals == 1


def test_a_final_record_after_an_open_one_whose_request_failed_is_an_ordinary_one():
    # Given an open record whose request failed (it may have landed all the same)
    api = CapturingApi()
    reporter = driven_by_hand(HttpReporter(api, flush_interval=3600))  # type: ignore[arg-type]
    run = a_task_run()
    reporter.report_task_run(run)
    api.down = True
    reporter._send_pending()

    # When the run ends and the control plane is back
    move(run, Completed())
    reporter.report_task_run(run)
    api.down = False
    reporter._send_pending()

    # Then the final record goes as an ordinary task run, once
    assert api.sent("task_runs") == [(run.id, "COMPLETED", 2)]
    assert api.sent("finished_task_runs") == []


def test_the_sender_serializes_the_record_as_reported_not_as_changed_since():
    # Given a record reported Running, then changed in place without being reported again
    api = CapturingApi()
    reporter = driven_by_hand(HttpReporter(api, flush_interval=3600))  # type: ignore[arg-type]
    run = a_task_run()
    reporter.report_task_run(run)
    run.__dict__["state"] = Completed()  # the engine is halfway through its next update

    # When the sender sends
    reporter._send_pending()

    # Then it sent the consistent record it was handed: Running at version 1
    assert api.sent("task_runs") == [(run.id, "RUNNING", 1)]


def test_batches_over_the_byte_limit_are_cut_and_carry_every_record_once():
    # Given one run's task runs and long log lines, together far over the byte limit
    buffer = ReportBuffer()
    for _ in range(10):
        run = a_task_run()
        move(run, Completed())
        buffer.add_task_run(run)
    for n in range(120):
        buffer.logs.append(LogRecord(id=f"l{n}", flow_run_id="fr-1", timestamp=utcnow(),
                                     message="x" * MAX_LOG_MESSAGE_CHARS))
    taken, _, _ = buffer.take(held_since=None, finished_in_batch=True, skip_runs=set())

    # When they are cut into request bodies
    bodies = [json.loads(chunk.body) for chunk in chunks(taken["fr-1"], 500, "lease-1")]

    # Then each fits, names the lease, and the records arrive once each, logs in order
    assert len(bodies) > 1
    assert all(len(json.dumps(b, separators=(",", ":"))) <= BATCH_BYTES for b in bodies)
    assert all(b["lease"] == "lease-1" for b in bodies)
    assert [r["id"] for b in bodies for r in b["logs"]] == [f"l{n}" for n in range(120)]
    assert len([t for b in bodies for t in b.get("finished_task_runs", [])]) == 10


def test_a_long_backlog_ends_in_several_batches_in_order_the_state_with_the_last():
    # Given a run of this process with more records than one batch holds
    api = CapturingApi()
    reporter = HttpReporter(api, flush_interval=3600, max_batch=4)  # type: ignore[arg-type]
    flow_run = FlowRun(id="fr-1", flow_name="f", state=Pending())
    reporter.adopted.add(flow_run.id)
    runs = [a_task_run() for _ in range(7)]
    for run in runs:
        move(run, Completed())
        reporter.report_task_run(run)
    for n in range(6):
        reporter.report_log(LogRecord(id=f"l{n}", flow_run_id="fr-1", timestamp=utcnow(),
                                      message=f"line {n}"))
    original = api.send_events

    def answer_with_transition(flow_run_id, batch, attempts=None):
        from sluice.models import SetStateResponse, State, TransitionStatus

        accepted = original(flow_run_id, batch, attempts)
        body = json.loads(batch)
        if "state" in body:
            accepted.transition = SetStateResponse(status=TransitionStatus.ACCEPT,
                                                   state=State.model_validate(body["state"]))
        return accepted

    api.send_events = answer_with_transition  # type: ignore[method-assign]

    # When the run ends
    reporter.set_flow_run_state(flow_run, Completed(), "t-end")

    # Then every record went once, the logs in order, and only the last batch held the state
    assert len(api.batches) == 4
    assert ["state" in body for body in api.batches] == [False, False, False, True]
    assert sorted(r[0] for r in api.sent("finished_task_runs")) == sorted(r.id for r in runs)
    assert [r["id"] for body in api.batches for r in body["logs"]] == [f"l{n}" for n in range(6)]


def test_an_outage_in_the_middle_of_a_backlog_buffers_the_failed_batch_for_later():
    # Given a backlog of three batches whose second request fails
    api = CapturingApi()
    reporter = driven_by_hand(HttpReporter(api, flush_interval=3600, max_batch=2))  # type: ignore[arg-type]
    for n in range(6):
        reporter.report_log(LogRecord(id=f"l{n}", flow_run_id="fr-1", timestamp=utcnow(),
                                      message=f"line {n}"))
    original = api.send_events
    calls = []

    def fail_the_second(flow_run_id, batch, attempts=None):
        calls.append(batch)
        if len(calls) == 2:
            raise errors.ServiceUnavailable("down")
        return original(flow_run_id, batch, attempts)

    api.send_events = fail_the_second  # type: ignore[method-assign]

    # When the sender sends, then sends again once the control plane is back
    reporter._send_pending()
    delivered_first = [r["id"] for body in api.batches for r in body["logs"]]
    reporter._send_pending()

    # Then the batches that got through went once, the failed one waited (its lines in order)
    # and went next, and every line arrived exactly once (lists order lines by timestamp, so
    # batches out at once may land in any order)
    failed_batch = [r["id"] for r in json.loads(calls[1])["logs"]]
    assert sorted(delivered_first + failed_batch) == [f"l{n}" for n in range(6)]
    delivered = [r["id"] for body in api.batches for r in body["logs"]]
    assert delivered == delivered_first + failed_batch


def test_snapshots_serialize_byte_for_byte_as_the_task_run_model_does():
    # Given task runs with every field set in its unusual forms (and one with defaults)
    from pydantic import TypeAdapter

    from sluice.models import State, StateType

    full = a_task_run(task_key="m.t", tags=["a", "ü"], cache_key="k", parent_task_run_id="p",
                      upstream_task_run_ids=["u1", "u2"], result_key="r/1", run_count=3,
                      start_time=utcnow(), end_time=utcnow())
    full.__dict__["state"] = State(type=StateType.FAILED, message='boom "\\n" ✓',
                                   scheduled_time=utcnow(), details={"exit": 1, "x": [None]})
    full.__dict__["version"] = 2**40
    runs = [full, a_task_run()]

    # When the sender builds a batch from their snapshots
    taken = ReportBuffer().take_run("none", finished_in_batch=True)
    taken.task_runs = [run.__dict__.copy() for run in runs]
    body = next(chunks(taken, 500)).body

    # Then the records are exactly the model's own JSON, each alone on a line (the framing
    # the API's store keeps each record's text by; raw line breaks are only whitespace)
    expected = TypeAdapter(list[TaskRun]).dump_json(runs)
    assert body.replace(b"\n", b"").startswith(b'{"task_runs":' + expected + b",")
    assert body.split(b"\n")[1::2] == [run.model_dump_json().encode() for run in runs]
