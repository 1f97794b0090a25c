"""The events routes validate a batch straight from the request's JSON text (issue 20): the
same stored records and the same answers as the usual path (`parse_json_body`, then pydantic),
which still decides every body the fast path does not take."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sluice.models import EventsBatch, TaskRun
from sluice_functions.api import batch_body
from sluice_functions.api.request_checks import MAX_JSON_DEPTH

from .conftest import NOW
from .test_flow_run_routes import log_line, task_run

JSON = {"content-type": "application/json"}


@pytest.fixture
def fast_path(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether the fast path took each events body posted (in order)."""
    taken: list[bool] = []
    real = batch_body.prevalidated

    def spied(text: str, **options: Any) -> Any:
        result = real(text, **options)
        taken.append(result is not None)
        return result

    monkeypatch.setattr(batch_body, "prevalidated", spied)
    return taken


def _usual_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batch_body, "prevalidated", lambda text, **options: None)


def test_a_plain_batch_takes_the_fast_path_and_stores_what_the_usual_path_would(api, fast_path):
    # Given a running run and a batch of its task runs and log lines (as a client sends them)
    run_id, lease = api.running_run()
    runs = [task_run(run_id, f"step-{i}", version=2) for i in range(3)]
    body = {"task_runs": runs[:1], "finished_task_runs": runs[1:],
            "logs": [log_line(run_id, 1), log_line(run_id, 2, "ünïcode \"quoted\"")],
            "lease": lease}

    # When it is posted
    answer = api.post(f"/flow-runs/{run_id}/events", body)

    # Then the fast path took it, and the records stored are the usual path's models
    assert fast_path == [True]
    assert (answer.status, answer.json) == (200, {"task_runs": 3, "logs": 2})
    expected = EventsBatch.model_validate(json.loads(json.dumps(body)))
    stored = api.get(f"/flow-runs/{run_id}/task-runs").json["items"]
    assert [TaskRun.model_validate(item) for item in stored] == sorted(
        expected.task_runs + expected.finished_task_runs, key=lambda t: t.id)
    lines = api.get(f"/flow-runs/{run_id}/logs").json["items"]
    assert [line["message"] for line in lines] == ["hello 1", 'ünïcode "quoted" 2']


def test_a_batch_with_its_final_state_takes_the_fast_path_on_the_pool_route_too(api, fast_path):
    # Given a running run of pool "etl"
    run_id, lease = api.running_run()
    batch = {"task_runs": [task_run(run_id, "load-1")], "lease": lease, "transition_id": "t-1",
             "state": {"type": "COMPLETED", "timestamp": NOW.isoformat()}}

    # When its worker's route gets the last batch with the final state
    answer = api.post(f"/pools/etl/flow-runs/{run_id}/events", batch)

    # Then the fast path took it and the run ended
    assert fast_path == [True]
    assert answer.json["transition"]["status"] == "ACCEPT"
    assert api.get(f"/flow-runs/{run_id}").json["state"]["type"] == "COMPLETED"


def _bodies(run_id: str, lease: str) -> dict[str, str]:
    """Bodies the fast path must not decide (or refuses), by what is special about them."""
    record = task_run(run_id, "step-1")
    plain = json.dumps({"task_runs": [record], "lease": lease})
    deep = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    return {
        "unknown field holding NaN": plain.replace('"version"', '"extra": NaN, "version"'),
        "unknown field nested too deep": plain.replace('"version"', f'"x": {deep}, "version"'),
        "unknown field (ignored)": plain.replace('"version"', '"extra": {"a": 1}, "version"'),
        "NaN in a known field": plain.replace('"version": 1', '"version": NaN'),
        "Infinity as a time": plain.replace('"version": 1', '"version": 1, "end_time": Infinity'),
        "details nested too deep": plain.replace(
            '"type": "COMPLETED"', f'"type": "COMPLETED", "details": {{"x": {deep}}}'),
        "details within the limit": plain.replace(
            '"type": "COMPLETED"', '"type": "COMPLETED", "details": {"x": [1, 2.5, "y"]}'),
        "lone surrogate": plain.replace('"step-1"', '"step-\\ud800"', 1),
        "paired surrogates": plain.replace('"step-1"', '"step-\\ud83d\\ude00"', 1),
        "wrong type": plain.replace('"version": 1', '"version": "one"'),
        "missing field": plain.replace('"task_name": "step", ', ""),
        "message over its limit": json.dumps({"logs": [log_line(run_id, 1, "x" * 40_000)],
                                              "lease": lease}),
        "unknown top-level field": plain[:-1] + ', "surprise": 1}',
        "not an object": json.dumps([record]),
        "truncated": plain[:-5],
        "trailing data": plain + " []",
        "state without transition id": plain[:-1] + ', "state": {"type": "COMPLETED", '
                                                    f'"timestamp": "{NOW.isoformat()}"}}}}',
        "naive timestamp": plain.replace(NOW.isoformat(), "2024-05-01T12:00:00"),
        "naive start time": plain.replace('"version": 1', '"version": 1, "start_time": '
                                          '"2024-05-01T12:00:00"'),
        "naive log time": json.dumps({"logs": [log_line(run_id, 1)], "lease": lease}).replace(
            "12:00:01Z", "12:00:01"),
        "time before 1970": plain.replace(NOW.isoformat(), "1969-12-31T23:59:59+00:00"),
        "time in year 3000": plain.replace(NOW.isoformat(), "3000-01-01T00:00:00+00:00"),
        "time just inside the range": plain.replace(NOW.isoformat(), "2999-12-31T23:59:59Z"),
        "unknown field in a state": plain.replace('"type": "COMPLETED"',
                                                  '"type": "COMPLETED", "extra": 1'),
        "another run's record": plain.replace(f'"flow_run_id": "{run_id}"',
                                              '"flow_run_id": "other"'),
        "stale lease": plain.replace(lease, "stale"),
        "duplicate keys": plain.replace('"version": 1', '"version": 1, "version": 7'),
    }


@pytest.mark.parametrize("case", list(_bodies("r", "l")))
def test_every_other_body_gets_the_usual_paths_answer(api, monkeypatch, case):
    # Given a running run and a body the fast path must not decide differently
    run_id, lease = api.running_run()
    body = _bodies(run_id, lease)[case]

    # When it is posted with the fast path, and again through the usual path alone
    fast = api.post(f"/flow-runs/{run_id}/events", body, headers=JSON)
    _usual_path(monkeypatch)
    usual = api.post(f"/flow-runs/{run_id}/events", body, headers=JSON)

    # Then the answers are the same (a refusal names the same problem, never a 500)
    assert (fast.status, fast.json) == (usual.status, usual.json), case
    assert fast.status < 500


@pytest.mark.parametrize("case, taken", [
    ("unknown field (ignored)", False), ("details within the limit", False),
    ("paired surrogates", False), ("NaN in a known field", False),
    ("duplicate keys", True), ("naive timestamp", False), ("stale lease", True),
    ("naive start time", False), ("naive log time", False), ("time before 1970", False),
    ("time in year 3000", False), ("time just inside the range", True),
    ("unknown field in a state", False),
])
def test_the_fast_path_leaves_free_form_or_unusual_bodies_to_the_usual_path(case, taken):
    body = _bodies("run-1", "lease-1")[case]
    assert (batch_body.prevalidated(body) is not None) is taken


def test_a_batch_the_fast_path_took_is_not_walked_again_for_its_timestamps(api, monkeypatch):
    # Given the walk over a model's timestamps watched
    walked: list[Any] = []
    monkeypatch.setattr(batch_body, "check_timestamps", walked.append)
    run_id, lease = api.running_run()
    body = {"task_runs": [task_run(run_id, "step-1", version=2)], "lease": lease}

    # When a plain batch is posted, Then it is stored without the walk (validation checked
    # its timestamps)
    assert api.post(f"/flow-runs/{run_id}/events", body).status == 200
    assert walked == []
    assert type(batch_body.prevalidated(json.dumps(body)).batch) is batch_body.CheckedEventsBatch

    # When the usual path takes it instead, Then the walk runs as before
    _usual_path(monkeypatch)
    assert api.post(f"/flow-runs/{run_id}/events", body).status == 200
    assert len(walked) == 1


def test_other_routes_bodies_are_parsed_as_before(api, fast_path):
    # A state change and an emitted event: their bodies never reach the events fast path
    run_id, lease = api.running_run()
    answer = api.post(f"/flow-runs/{run_id}/state",
                      {"state": {"type": "COMPLETED", "timestamp": NOW.isoformat()},
                       "transition_id": "t-2", "lease": lease})
    assert answer.json["status"] == "ACCEPT"
    assert fast_path == []


def test_the_openapi_document_still_describes_the_events_body(api):
    paths = api.get("/openapi.json").json["paths"]
    for path in ("/flow-runs/{flow_run_id}/events",
                 "/pools/{name}/flow-runs/{flow_run_id}/events"):
        operation = paths[path]["post"]
        schema = {"$ref": "#/components/schemas/EventsBatch"}
        assert operation["requestBody"] == {
            "content": {"application/json": {"schema": schema}}, "required": True}
        assert "batch" not in {p["name"] for p in operation.get("parameters", [])}


@pytest.mark.parametrize("path, batch_route", [
    ("/flow-runs/fr-1/events", True), ("/pools/etl/flow-runs/fr-1/events", True),
    ("/events", False), ("/pools/etl/events", False), ("/flow-runs/fr-1/state", False),
    ("/flow-runs/fr-1/events/x", False), ("/flow-runs//events", False),
])
def test_only_the_events_batch_routes_offer_their_body_to_the_fast_path(path, batch_route):
    assert bool(batch_body._EVENTS_BATCH_PATH.fullmatch(path)) is batch_route


def test_the_fast_path_validator_is_trusted_only_if_it_refuses_a_naive_nested_time():
    # The nested check rests on pydantic-core building nested validators from the tightened
    # schema; one that reused the models' own would accept the probe, and is not used
    checking = batch_body._checking_validator()
    assert checking is not None  # this pydantic-core builds them
    with pytest.raises(ValueError, match="timezone"):
        checking.validate_json(batch_body._NAIVE_NESTED_TIME)
    assert batch_body.EventsBatch.model_validate_json(batch_body._NAIVE_NESTED_TIME)  # the probe
