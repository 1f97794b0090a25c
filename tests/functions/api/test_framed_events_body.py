"""Framed events bodies (issue 20): ordinary JSON with each task-run record alone on a line,
as the SDK's reporter sends them. The fast path validates the records one by one and the
embedded store keeps each record's own text instead of serializing its model again; every
body it does not take, however it is cut into lines, gets the usual path's answer."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sluice.client.batch_bodies import chunks
from sluice.client.report_buffer import Taken
from sluice.models import EventsBatch, TaskRun
from sluice_functions.api import batch_body
from sluice_functions.api.batch_body import received_json

from .conftest import NOW
from .test_flow_run_routes import log_line, task_run

JSON = {"content-type": "application/json"}


def compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def framed(task_runs: list[dict], finished: list[dict] = (), **rest: Any) -> str:
    """A body with each record on a line of its own, as the SDK frames it."""
    def one_a_line(records: list[dict]) -> str:
        return "[\n" + "\n,\n".join(map(compact, records)) + "\n]" if records else "[]"

    tail = compact(rest)[1:-1]
    return ('{"task_runs":' + one_a_line(task_runs) + ',"finished_task_runs":'
            + one_a_line(list(finished)) + ("," + tail if tail else "") + "}")


def stored_docs(api: Any, run_id: str) -> dict[str, str]:
    """The task runs' documents as the SQLite store keeps them."""
    with api.ports.store.adapter._db.read() as conn:
        rows = conn.execute("SELECT id, doc FROM task_runs WHERE flow_run_id = ?", (run_id,))
        return {row["id"]: row["doc"] for row in rows}


def test_a_framed_batch_is_stored_with_each_records_own_text(api):
    # Given a running run and a framed batch of its task runs, log lines and final state
    run_id, lease = api.running_run()
    runs = [task_run(run_id, f"step-{i}", version=2) for i in range(4)]
    body = framed(runs[:1], runs[1:], logs=[log_line(run_id, 1)], lease=lease,
                  state={"type": "COMPLETED", "timestamp": NOW.isoformat()}, transition_id="t-9")

    # When it is posted
    answer = api.post(f"/flow-runs/{run_id}/events", body, headers=JSON)

    # Then everything landed as the usual path would have stored it
    assert answer.status == 200, answer.json
    assert answer.json["task_runs"] == 4 and answer.json["logs"] == 1
    assert answer.json["transition"]["status"] == "ACCEPT"
    expected = EventsBatch.model_validate_json(body)
    listed = api.get(f"/flow-runs/{run_id}/task-runs").json["items"]
    assert [TaskRun.model_validate(item) for item in listed] == sorted(
        expected.task_runs + expected.finished_task_runs, key=lambda t: t.id)
    # And each document is the record's line, byte for byte (not serialized again)
    assert stored_docs(api, run_id) == {run["id"]: compact(run) for run in runs}


def test_the_sdks_own_bodies_are_framed_and_taken_whole():
    # Given snapshots as the reporter holds them, one with a free-form detail
    records = [TaskRun.model_validate(task_run("run-1", f"step-{i}")).__dict__
               for i in range(3)]
    taken = Taken()
    taken.task_runs, taken.finished = records[:1], records[1:]

    # When the reporter builds its body, Then it is framed and the fast path keeps every text
    body = next(chunks(taken, 500, "lease-1")).body.decode()
    assert body.count("\n") == 2 * 3
    batch = batch_body.prevalidated(body).batch
    received = received_json(batch)
    assert received is not None and len(received) == 3
    for model in batch.task_runs + batch.finished_task_runs:
        assert TaskRun.model_validate_json(received.get(model)) == model
    assert json.loads(body) == json.loads(body.replace("\n", ""))


def test_a_list_whose_records_hold_nested_objects_like_records_is_sent_unframed():
    # Given a record whose details hold objects keyed "id" (the border the framing looks for)
    detailed = task_run("run-1", "step-2")
    detailed["state"]["details"] = {"items": [{"id": 1}, {"id": 2}]}
    records = [TaskRun.model_validate(r).__dict__ for r in (task_run("run-1", "step-1"),
                                                            detailed)]
    taken = Taken()
    taken.finished = records

    # When the body is built, Then that list goes on one line (and reads the same)
    body = next(chunks(taken, 500)).body
    assert b"\n" not in body
    assert EventsBatch.model_validate_json(body).finished_task_runs == [
        TaskRun.model_validate(r) for r in records]


def _framed_bodies(run_id: str, lease: str) -> dict[str, str]:
    """Bodies cut into lines in ways the framed path must not decide differently."""
    # Ids of the run's own (two runs' ids may share their first characters)
    one = {**task_run(run_id, "step-1"), "id": f"{run_id}-step-1"}
    two = {**task_run(run_id, "step-2"), "id": f"{run_id}-step-2"}
    good = framed([one, two], lease=lease)
    return {
        "framed": good,
        "two records on a line": '{"task_runs":[\n' + compact(one) + "," + compact(two)
                                 + '\n],"lease":' + compact(lease) + "}",
        "a record over two lines": good.replace('"state":', '\n"state":', 1),
        "pretty printed": json.dumps({"task_runs": [one, two], "lease": lease}, indent=2),
        "a log line where a record goes": '{"task_runs":[\n' + compact(one) + '\n],"logs":[\n'
                                          + compact(log_line(run_id, 1)) + '\n],"lease":'
                                          + compact(lease) + "}",
        "a list given twice": good[:-1] + ',"task_runs":[\n' + compact(two) + "\n]}",
        "a number posing as a record": good.replace('"task_runs":[\n', '"task_runs":[0,\n', 1),
        "a record posing as another list": good.replace('"task_runs":[\n',
                                                        '"task_runs":[\n0\n,\n', 1),
        "a naive time in a record": good.replace(NOW.isoformat(), "2024-05-01T12:00:00", 1),
        "an unknown field in a record": good.replace('"version":1', '"version":1,"x":1', 1),
        "an unknown field around the records": good[:-1] + ',"surprise":1}',
        "a record that is not an object": good.replace(compact(two), "[1,2]"),
        "details in a record": good.replace('"type":"COMPLETED"',
                                            '"type":"COMPLETED","details":{"x":1}', 1),
        "a duplicated key in a record": good.replace('"version":1', '"version":1,"version":5',
                                                     1),
        "another run's record": good.replace(f'"flow_run_id":"{run_id}"',
                                             '"flow_run_id":"other"', 1),
        "a stale lease": good.replace(compact(lease), '"stale"'),
        # A body that names the record's place itself, hoping to match the placeholder
        "a list given again as a number": good[:-1] + ',"task_runs":[0,1]}',
        "a list given again as strings": good[:-1] + ',"task_runs":["0","1"]}',
        "a record where a timestamp goes": '{"logs":[{"id":"l","flow_run_id":' + compact(run_id)
                                           + ',"level":"INFO","message":"m","timestamp":\n'
                                           + compact(one) + '\n}],"task_runs":["0"],"lease":'
                                           + compact(lease) + "}",
        "carriage returns": good.replace("\n", "\r\n"),
        "truncated": good[:-3],
    }


@pytest.mark.parametrize("case", list(_framed_bodies("r", "l")))
def test_every_framing_gets_the_usual_paths_answer_and_records(api, monkeypatch, case):
    # Given two running runs and a body cut into lines some way
    fast_run, fast_lease = api.running_run()
    usual_run, usual_lease = api.running_run()

    # When it is posted with the fast paths on, and for the other run through the usual path
    fast = api.post(f"/flow-runs/{fast_run}/events",
                    _framed_bodies(fast_run, fast_lease)[case], headers=JSON)
    monkeypatch.setattr(batch_body, "prevalidated", lambda text, **options: None)
    usual = api.post(f"/flow-runs/{usual_run}/events",
                     _framed_bodies(usual_run, usual_lease)[case], headers=JSON)

    # Then the answers are the same (but for the run's id), and so are the records each got
    assert fast.status < 500, fast.json
    assert (fast.status, json.dumps(fast.json).replace(fast_run, "<run>")) == \
        (usual.status, json.dumps(usual.json).replace(usual_run, "<run>")), case

    def listed(run_id: str) -> list[dict]:
        items = api.get(f"/flow-runs/{run_id}/task-runs").json["items"]
        return [{**item, "id": item["id"][len(run_id):], "flow_run_id": None}
                for item in items]

    assert listed(fast_run) == listed(usual_run)


@pytest.mark.parametrize("case, framed_path", [
    ("framed", True), ("carriage returns", True), ("a duplicated key in a record", True),
    ("two records on a line", False), ("a record over two lines", False),
    ("pretty printed", False), ("a log line where a record goes", False),
    ("a list given twice", False), ("a number posing as a record", False),
    ("a record posing as another list", False), ("a naive time in a record", False),
    ("an unknown field in a record", False), ("an unknown field around the records", False),
    ("a list given again as a number", False), ("a list given again as strings", False),
    ("a record where a timestamp goes", False),
])
def test_only_well_framed_bodies_keep_their_records_texts(case, framed_path):
    body = _framed_bodies("run-1", "lease-1")[case]
    taken = batch_body.prevalidated(body)
    assert (taken is not None and received_json(taken.batch) is not None) is framed_path


def test_a_stored_text_reads_back_as_the_model_validated_from_it(api):
    # Given a framed record whose JSON differs from its model's (a duplicated key, spacing,
    # an offset time)
    run_id, lease = api.running_run()
    record = compact(task_run(run_id, "step-1")).replace('"version":1', '"version":1,"version":3')
    record = record.replace(NOW.isoformat(), "2024-05-01T14:00:00+02:00")
    body = '{"task_runs":[\n' + record + '\n],"lease":' + compact(lease) + "}"

    # When it is stored, Then the document is the line, and reading it gives the model
    assert api.post(f"/flow-runs/{run_id}/events", body, headers=JSON).status == 200
    assert list(stored_docs(api, run_id).values()) == [record]
    (item,) = api.get(f"/flow-runs/{run_id}/task-runs").json["items"]
    assert TaskRun.model_validate(item) == TaskRun.model_validate_json(record)
    assert item["version"] == 3


def test_the_framed_validators_are_trusted_only_if_they_refuse_a_naive_nested_time():
    validators = batch_body._framed_validators()
    assert validators is not None  # this pydantic-core builds them
    skeleton, record = validators
    with pytest.raises(ValueError, match="timezone"):
        skeleton.validate_json(batch_body._NAIVE_STATE_TIME)
    with pytest.raises(ValueError, match="timezone"):
        record.validate_json(batch_body._NAIVE_RECORD_TIME)


def test_a_store_that_keeps_no_texts_gets_framed_bodies_validated_in_one_pass():
    # Given the deserializer of an API whose store does not keep records' texts (DynamoDB)
    class Event:
        http_method, path = "POST", "/flow-runs/run-1/events"

    body = framed([task_run("run-1", "step-1")], lease="lease-1")
    plain, keeping = (batch_body.json_body_reader(lambda: Event, keep_record_text=keep)
                      for keep in (False, True))

    # When a framed body arrives, Then only the keeping one validates it record by record
    assert received_json(plain(body).batch) is None
    assert received_json(keeping(body).batch) is not None
    one_pass, by_record = plain(body).batch, keeping(body).batch
    assert (one_pass.task_runs, one_pass.lease) == (by_record.task_runs, by_record.lease)
