"""The HTTP reporter holds a task run's first (Pending) record briefly (issue 20): one that
starts meanwhile is sent once, in its later state; one that stays Pending is still sent."""

from __future__ import annotations

import json
import threading

from sluice.client.reporter import HttpReporter
from sluice.models import Completed, EventsAccepted, Pending, TaskRun, new_id
from sluice.profiles import Connection


class RecordingApi:
    def __init__(self) -> None:
        self.connection = Connection(api_url="http://fake")
        self.sent: list[tuple[str, str, int]] = []
        self.lock = threading.Lock()

    def send_events(self, flow_run_id, batch, attempts=None):
        with self.lock:
            body = json.loads(batch)
            for record in body["task_runs"] + body.get("finished_task_runs", []):
                self.sent.append((record["id"], record["state"]["type"], record["version"]))
        return EventsAccepted(task_runs=0, logs=0)


def _pending_run(flow_run_id: str) -> TaskRun:
    return TaskRun(id=new_id(), flow_run_id=flow_run_id, task_name="t", name="t-0",
                   state=Pending(), version=0)


def test_a_run_that_starts_while_held_is_sent_once_in_its_later_state():
    # Given a reporter whose sender looks at its buffer right after a Pending record arrives
    api = RecordingApi()
    reporter = HttpReporter(api, flush_interval=2.0)  # type: ignore[arg-type]
    run = _pending_run("fr-1")
    reporter.report_task_run(run)
    reporter._send_pending()
    assert api.sent == []  # held: it is younger than half a flush interval

    # When the run moves on and the buffer is flushed
    run.state = Completed()
    run.version = 2
    reporter.report_task_run(run)
    reporter.flush(timeout=5)
    reporter.close()

    # Then one record went, the Completed one
    assert api.sent == [(run.id, "COMPLETED", 2)]


def test_a_run_that_stays_pending_is_still_delivered_by_a_flush():
    # Given a Pending record that never changes
    api = RecordingApi()
    reporter = HttpReporter(api, flush_interval=0.2)  # type: ignore[arg-type]
    run = _pending_run("fr-2")
    reporter.report_task_run(run)

    # When the buffer is flushed
    reporter.flush(timeout=5)
    reporter.close()

    # Then it was sent (once it was old enough), nothing is left buffered
    assert api.sent == [(run.id, "PENDING", 0)]
    assert reporter.buffer.is_empty()
