"""Every error status of the API, from the one mapping in `sluice_functions.api.errors`."""

from __future__ import annotations

import base64
import logging

import pytest

from sluice.exceptions import ServiceUnavailable, Throttled
from sluice_functions.adapters.memory_metrics import InMemoryMetrics
from sluice_functions.api import MAX_JSON_DEPTH, MAX_REQUEST_BODY_BYTES, build_app
from sluice_functions.ports import ControlPlanePorts

from .events import LambdaContext, http_event, read_answer

ERROR_KEYS = {"error", "message", "details"}


class FailingStore:
    """A RunStore whose every call raises `exc` (a backend in trouble)."""

    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def __getattr__(self, name: str):
        def fail(*args, **kwargs):
            raise self.exc
        return fail


def app_with_failing_store(exc: Exception):
    ports = ControlPlanePorts(store=FailingStore(exc), queue=FailingStore(exc),
                              logs=FailingStore(exc), metrics=InMemoryMetrics())
    return build_app(ports)


def call(app, method, path, **event):
    return read_answer(app.resolve(http_event(method, path, **event), LambdaContext()))


# ---- 400 ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("body", [
    '{"flow_name": "a"',                                   # truncated
    '{"flow_name": NaN}',                                  # Python's json would take it
    '{"flow_name": "a", "retry_delay_seconds": Infinity}',
    '{"flow_name": "\\ud800"}',                            # a lone surrogate
    '{"flow_name": "a", "parameters": {"x": ' + "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH + "}}",
])
def test_a_body_that_is_not_plain_json_is_a_400_and_writes_nothing(api, body):
    answer = api.post("/flow-runs", body, headers={"content-type": "application/json"})
    assert (answer.status, answer.error) == (400, "malformed_json")
    assert set(answer.json) == ERROR_KEYS
    assert api.writes == []


def test_nesting_up_to_the_depth_limit_is_accepted(api):
    depth = MAX_JSON_DEPTH - 3  # body object > parameters > x > the arrays
    body = '{"flow_name": "a", "parameters": {"x": ' + "[" * depth + "]" * depth + "}}"
    assert api.post("/flow-runs", body).status == 201


@pytest.mark.parametrize("raw", [b"!!not base64!!", base64.b64encode(b"\xff\xfe{}")])
def test_a_body_that_cannot_be_decoded_is_a_400(api, raw):
    event = http_event("POST", "/flow-runs", body=raw.decode(),
                       headers={"content-type": "application/json"})
    event["isBase64Encoded"] = True
    answer = read_answer(api.app.resolve(event, LambdaContext()))
    assert (answer.status, answer.error) == (400, "bad_request")
    assert api.writes == []


def test_multipart_without_a_boundary_is_a_400(api):
    answer = api.post("/flow-runs", "--x--", headers={"content-type": "multipart/form-data"})
    assert answer.status == 400


# ---- 404 ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("method, path", [
    ("GET", "/nowhere"), ("PUT", "/flow-runs"), ("GET", "/flow-runs/a/b/c"), ("POST", "/"),
])
def test_an_unknown_route_is_a_json_404(api, method, path):
    answer = api.call(method, path)
    assert (answer.status, answer.error) == (404, "route_not_found")
    assert answer.json["details"] == {"method": method, "path": path}


# ---- 413 ---------------------------------------------------------------------------------------

def test_a_body_over_the_size_limit_is_a_413_before_it_is_parsed(api):
    # Not even JSON: a 413 (not a 400) proves the size is checked before parsing
    answer = api.post("/flow-runs", "x" * (MAX_REQUEST_BODY_BYTES + 1),
                      headers={"content-type": "application/json"})
    assert (answer.status, answer.error) == (413, "payload_too_large")
    assert answer.json["details"]["limit"] == MAX_REQUEST_BODY_BYTES


def test_the_size_limit_counts_utf8_bytes_not_characters(api):
    body = '"' + "é" * (MAX_REQUEST_BODY_BYTES // 2) + '"'  # 2 bytes each
    answer = api.post("/flow-runs", body, headers={"content-type": "application/json"})
    assert answer.status == 413


def test_parameters_over_their_limit_are_a_413_naming_the_field(api):
    answer = api.post("/flow-runs", {"flow_name": "a", "parameters": {"x": "y" * 70_000}})
    assert (answer.status, answer.error) == (413, "payload_too_large")
    assert answer.json["details"]["field"] == "parameters"
    assert api.writes == []


# ---- 415, 422 ----------------------------------------------------------------------------------

def test_a_body_that_is_not_json_by_content_type_is_a_415(api):
    answer = api.post("/flow-runs", "flow_name=a", headers={"content-type": "text/plain"})
    assert (answer.status, answer.error) == (415, "unsupported_media_type")


def test_invalid_fields_are_a_422_listing_each_location(api):
    answer = api.post("/flow-runs", {"flow_name": "", "retries": -1, "surprise": 1})
    assert (answer.status, answer.error) == (422, "validation_error")
    locations = sorted(tuple(d["loc"]) for d in answer.json["details"])
    assert locations == [("body", "flow_name"), ("body", "retries"), ("body", "surprise")]
    assert answer.json["message"].startswith("body.")
    assert api.writes == []


def test_a_path_id_over_its_length_limit_is_a_422(api):
    answer = api.get("/flow-runs/" + "x" * 65)
    assert answer.status == 422
    assert answer.json["details"][0]["loc"] == ["path", "flow_run_id"]


@pytest.mark.parametrize("when, problem", [
    ("2024-05-01T12:00:00", "timezone_aware"),
    ("0001-01-01T00:00:00+01:00", "timestamp_range"),
    ("9999-12-31T23:59:59Z", "timestamp_range"),
])
def test_a_body_timestamp_without_zone_or_out_of_range_is_a_422(api, when, problem):
    answer = api.post("/flow-runs", {"flow_name": "a", "scheduled_at": when})
    assert answer.status == 422
    assert answer.json["details"] == [{"loc": ["body", "scheduled_at"], "msg": answer.json[
        "details"][0]["msg"], "type": problem}]
    assert api.writes == []


def test_a_query_time_without_zone_is_read_as_utc_but_out_of_range_is_a_422(api):
    assert api.get("/flow-runs", query={"scheduled_after": "2024-05-01T00:00:00"}).status == 200
    assert api.get("/flow-runs", query={"scheduled_after": "0001-01-01T00:00:00"}).status == 422


# ---- 429, 503, 500 -----------------------------------------------------------------------------

@pytest.mark.parametrize("exc, status, retry_after", [
    (Throttled("DynamoDB throttled the read", retry_after=2.5), 429, "3"),
    (ServiceUnavailable("SQS is unavailable", retry_after=0.1), 503, "1"),
])
def test_backend_push_back_answers_with_retry_after(exc, status, retry_after):
    answer = call(app_with_failing_store(exc), "GET", "/flow-runs/r1")
    assert answer.status == status
    assert answer.headers["retry-after"] == retry_after
    assert answer.json["message"] == exc.message


def test_an_unexpected_failure_is_a_generic_500_and_is_logged(caplog):
    app = app_with_failing_store(RuntimeError("password=hunter2 in a connection string"))
    with caplog.at_level(logging.ERROR):
        answer = call(app, "GET", "/flow-runs/r1")
    assert (answer.status, answer.error) == (500, "internal_error")
    assert "hunter2" not in str(answer.json)
    assert answer.json["details"]["request_id"]
    assert "hunter2" in caplog.text  # the operator sees the cause in the logs


def test_health_answers_without_touching_any_backend():
    answer = call(app_with_failing_store(RuntimeError("down")), "GET", "/health")
    assert answer.status == 200
    assert answer.json["status"] == "ok"


def test_a_naive_timestamp_deep_in_an_events_batch_is_named(api):
    now = "2024-05-01T12:00:00Z"
    records = [{"id": f"t{i}", "flow_run_id": "fr-1", "task_name": "step", "name": f"step-{i}",
                "state": {"type": "COMPLETED", "timestamp": now}} for i in range(5)]
    records[3]["state"]["timestamp"] = "2024-05-01T12:00:00"
    answer = api.post("/flow-runs/fr-1/events", {"task_runs": records})
    assert answer.status == 422
    assert [d["loc"] for d in answer.json["details"]] == [
        ["body", "task_runs", 3, "state", "timestamp"]]
    assert api.writes == []
