"""The HTTP reporter: batches, buffers through outages, resends the same ids, drops the oldest
log lines (with a warning) past its bound, and never blocks the engine's hot path."""

from __future__ import annotations

import logging
import threading

import pytest

from sluice import exceptions as errors
from sluice.client.reporter import HttpReporter
from sluice.models import (
    Completed,
    EventsAccepted,
    FlowRun,
    LogRecord,
    Pending,
    Running,
    SetStateResponse,
    TaskRun,
    TransitionStatus,
    new_id,
    utcnow,
)
from sluice.profiles import Connection


class FakeApi:
    """Stands in for SluiceClient; `down` makes every call fail like an outage."""

    def __init__(self) -> None:
        self.connection = Connection(api_url="http://fake")
        self.down = threading.Event()
        self.batches: list[bytes] = []
        self.transitions: list[str] = []
        self.refuse_next: TransitionStatus | None = None

    def _outage(self) -> None:
        if self.down.is_set():
            raise errors.ServiceUnavailable("down")

    def create_flow_run(self, request):
        self._outage()

    def set_flow_run_state(self, flow_run_id, state, transition_id, lease=None):
        self._outage()
        self.transitions.append(state.name)
        status, self.refuse_next = self.refuse_next or TransitionStatus.ACCEPT, None
        return SetStateResponse(status=status, state=state, reason="cancelled by user")

    def send_events(self, flow_run_id, batch, attempts=None):
        self._outage()
        self.batches.append(batch)
        return EventsAccepted(task_runs=0, logs=0)


def _records(api: FakeApi) -> tuple[list[str], list[str]]:
    import json

    tasks, logs = [], []
    for batch in api.batches:
        body = json.loads(batch)
        tasks += [t["id"] for t in body["task_runs"] + body.get("finished_task_runs", [])]
        logs += [r["id"] for r in body["logs"]]
    return tasks, logs


def _task(flow_run_id: str) -> TaskRun:
    return TaskRun(id=new_id(), flow_run_id=flow_run_id, task_name="t", name="t-0",
                   state=Completed(), version=1)


def _log(flow_run_id: str, n: int) -> LogRecord:
    return LogRecord(id=f"log-{n}", flow_run_id=flow_run_id, timestamp=utcnow(),
                     message=f"line {n}")


def test_outage_buffers_and_resends_the_same_ids_once():
    api = FakeApi()
    reporter = HttpReporter(api, flush_interval=0.05)  # type: ignore[arg-type]
    run = "run-1"
    # Given the control plane is down while a run reports
    api.down.set()
    tasks = [_task(run) for _ in range(5)]
    for task in tasks:
        reporter.report_task_run(task)
    for n in range(7):
        reporter.report_log(_log(run, n))
    reporter.flush(timeout=0.3)
    assert api.batches == []
    # When it comes back, Then everything arrives, each record once
    api.down.clear()
    reporter.flush(timeout=10)
    sent_tasks, sent_logs = _records(api)
    assert sorted(sent_tasks) == sorted(t.id for t in tasks)
    assert sent_logs == [f"log-{n}" for n in range(7)]  # in order
    reporter.close()


def test_past_its_bound_it_drops_the_oldest_lines_with_a_warning(caplog):
    api = FakeApi()
    api.down.set()
    reporter = HttpReporter(api, flush_interval=10, max_buffered=5)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="sluice.reporter"):
        for n in range(8):
            reporter.report_log(_log("r", n))
    assert [r.id for r in reporter.buffer.logs] == [f"log-{n}" for n in range(3, 8)]
    assert any("dropped" in r.message for r in caplog.records)


def test_a_refused_transition_stops_the_run():
    api = FakeApi()
    reporter = HttpReporter(api)  # type: ignore[arg-type]
    run = FlowRun(id="r", flow_name="f", state=Pending())
    assert reporter.set_flow_run_state(run, Running(), "t1").name == "Running"
    api.refuse_next = TransitionStatus.ABORT
    with pytest.raises(errors.RunAborted, match="cancelled by user"):
        reporter.set_flow_run_state(run, Completed(), "t2")


def test_transitions_wait_out_a_short_outage(monkeypatch):
    api = FakeApi()
    reporter = HttpReporter(api, transition_timeout=5)  # type: ignore[arg-type]
    api.down.set()
    threading.Timer(0.3, api.down.clear).start()
    run = FlowRun(id="r", flow_name="f", state=Pending())
    assert reporter.set_flow_run_state(run, Running(), "t1").name == "Running"
    assert api.transitions == ["Running"]


def test_a_run_created_during_an_outage_is_tracked_locally(caplog):
    api = FakeApi()
    api.down.set()
    reporter = HttpReporter(api)  # type: ignore[arg-type]
    run = FlowRun(id="r", flow_name="f", state=Pending())
    with caplog.at_level(logging.WARNING, logger="sluice.reporter"):
        reporter.create_flow_run(run)
    assert any("tracked locally only" in r.message for r in caplog.records)
    # its later reports go nowhere instead of piling up
    assert reporter.set_flow_run_state(run, Running(), "t").name == "Running"
    reporter.report_task_run(_task("r"))
    reporter.flush(timeout=1)
    assert api.batches == [] and api.transitions == []
