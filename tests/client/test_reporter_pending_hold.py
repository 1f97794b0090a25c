"""The HTTP reporter holds a task run's first (Pending) record briefly (issue 20): one that
starts meanwhile is sent once, in its later state; one that stays Pending is still sent, at
most one batch of them a flush interval."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

from sluice.client.reporter import HttpReporter
from sluice.models import Completed, EventsAccepted, Pending, TaskRun, new_id, utcnow
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


def _aged_pending_run(flow_run_id: str, seconds: float) -> TaskRun:
    run = _pending_run(flow_run_id)
    run.state = Pending().model_copy(update={"timestamp": utcnow() - timedelta(seconds=seconds)})
    return run


def test_queued_runs_go_at_most_one_batch_a_flush_interval_oldest_first():
    # Given a map that queued more runs than a batch holds, all old enough to send
    api = RecordingApi()
    reporter = HttpReporter(api, flush_interval=60.0, max_batch=10)  # type: ignore[arg-type]
    reporter._thread = threading.current_thread()  # the test sends by hand: no sender thread
    runs = [_aged_pending_run("fr-3", seconds=100 - i) for i in range(25)]
    for run in runs:
        reporter.report_task_run(run)

    # When the sender looks twice within one flush interval
    reporter._send_pending()
    reporter._send_pending()

    # Then one batch's worth of Pending records went, the oldest, and the rest wait
    assert [record_id for record_id, _, _ in api.sent] == [run.id for run in runs[:10]]
    assert len(reporter.buffer.fresh) == 15

    # When a later record of a waiting run comes, Then it goes at once (the limit is for
    # first records only)
    runs[20].state = Completed()
    runs[20].version = 2
    reporter.report_task_run(runs[20])
    reporter._send_pending()
    assert api.sent[-1] == (runs[20].id, "COMPLETED", 2)

    # When the next interval begins, Then the next oldest go
    reporter._pending_window -= 60.0
    reporter._send_pending()
    assert [record_id for record_id, _, _ in api.sent[11:]] == [run.id for run in runs[10:20]]

    # When the flow run ends, Then everything of it goes, however many (nothing is dropped)
    taken = reporter.buffer.take_run("fr-3", finished_in_batch=True)
    assert [s["id"] for s in taken.task_runs] == [run.id for run in runs[21:]]
