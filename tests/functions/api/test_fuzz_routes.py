"""Malformed and odd requests thrown at every route (hypothesis): never a 5xx, every error is the
`{error, message, details}` JSON, and a refused request writes nothing."""

from __future__ import annotations

import base64
from datetime import timedelta
import json
import re
import string
import warnings
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import NOW, Api, state_body
from .events import LambdaContext, http_event, read_answer

#: Every route of the API as (method, path template); a test below keeps it equal to the app's
#: OpenAPI document, so a new route cannot escape the fuzzing.
ROUTES = [
    ("GET", "/health"),
    ("POST", "/flow-runs"),
    ("GET", "/flow-runs"),
    ("GET", "/flow-runs/resolve"),
    ("GET", "/flow-runs/{flow_run_id}"),
    ("DELETE", "/flow-runs/{flow_run_id}"),
    ("GET", "/flow-runs/{flow_run_id}/history"),
    ("POST", "/flow-runs/{flow_run_id}/state"),
    ("POST", "/flow-runs/{flow_run_id}/claim"),
    ("POST", "/flow-runs/{flow_run_id}/heartbeat"),
    ("POST", "/flow-runs/{flow_run_id}/cancel"),
    ("POST", "/flow-runs/{flow_run_id}/retry"),
    ("POST", "/flow-runs/{flow_run_id}/suspend"),
    ("POST", "/flow-runs/{flow_run_id}/resume"),
    ("POST", "/flow-runs/{flow_run_id}/events"),
    ("GET", "/flow-runs/{flow_run_id}/task-runs"),
    ("GET", "/flow-runs/{flow_run_id}/logs"),
    ("POST", "/deployments"),
    ("GET", "/deployments"),
    ("GET", "/deployments/{deployment_id}"),
    ("PATCH", "/deployments/{deployment_id}"),
    ("DELETE", "/deployments/{deployment_id}"),
    ("POST", "/deployments/{deployment_id}/runs"),
    ("GET", "/deployments/{flow_name}/{name}"),
    ("PATCH", "/deployments/{flow_name}/{name}"),
    ("DELETE", "/deployments/{flow_name}/{name}"),
    ("POST", "/deployments/{flow_name}/{name}/runs"),
    ("GET", "/deployments/{flow_name}/{name}/runs/{flow_run_id}"),
    ("POST", "/deployments/{deployment_id}/backfill"),
    ("POST", "/deployments/{flow_name}/{name}/backfill"),
    ("POST", "/pools"),
    ("GET", "/pools"),
    ("GET", "/pools/{name}"),
    ("PATCH", "/pools/{name}"),
    ("DELETE", "/pools/{name}"),
    ("POST", "/pools/{name}/workers"),
    ("POST", "/pools/{name}/workers/{worker}/heartbeat"),
    ("POST", "/pools/{name}/flow-runs"),
    ("GET", "/pools/{name}/flow-runs/{flow_run_id}"),
    ("POST", "/pools/{name}/flow-runs/{flow_run_id}/claim"),
    ("POST", "/pools/{name}/flow-runs/{flow_run_id}/heartbeat"),
    ("POST", "/pools/{name}/flow-runs/{flow_run_id}/state"),
    ("POST", "/pools/{name}/flow-runs/{flow_run_id}/events"),
    ("GET", "/pools/{name}/deployments/{deployment_id}"),
    ("GET", "/pools/{name}/bundles/{sha256}"),
    ("POST", "/bundles"),
    ("GET", "/bundles/{sha256}"),
    ("GET", "/stats/flow-runs"),
    ("GET", "/stats/deployments"),
    ("GET", "/events"),
    ("POST", "/events"),
    ("POST", "/pools/{name}/events"),
    ("POST", "/automations"),
    ("GET", "/automations"),
    ("GET", "/automations/{automation_id}"),
    ("PATCH", "/automations/{automation_id}"),
    ("DELETE", "/automations/{automation_id}"),
]
ERROR_KEYS = {"error", "message", "details"}

ODD_STRINGS = [
    "", " ", "0", "-1", "1e309", "null", "true", "[]", "{}", "..", "%2F", "%00", "\x00", "é",
    "\u202e", "x" * 70, "x" * 300, "RUNNING", "RUNNING,BOGUS", "2024-05-01T00:00:00",
    "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59Z", "etl/nightly", "\U0001F600",
]
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30),
    st.sampled_from(ODD_STRINGS),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=10), children, max_size=4),
    ),
    max_leaves=12,
)
odd_values = st.one_of(
    json_values,
    st.sampled_from([
        "x" * 5_000, {"a": "b" * 70_000}, [[[[[[[[[[[]]]]]]]]]]], -(10**40), 10**40,
        "2024-05-01T12:00:00", "1970-01-01T00:00:00Z", {"type": "RUNNING"}, [{"id": ""}],
        "\ud800",  # a lone surrogate: json.dumps sends it as the escape \ud800
    ]),
)
#: Almost-right values by the kind of the value they replace: the mistakes clients make.
TIMESTAMP_ODDITIES = ["2024-05-01T12:00:00", "2024-05-01", "0001-01-01T00:00:00+01:00",
                      "9999-12-31T23:59:59Z", "1970-01-01T00:00:00Z", "2024-13-01T00:00:00Z",
                      0, -1, 10**12, "now"]
NUMBER_ODDITIES = [-1, 0, 10**40, -(10**40), 1e308, 0.5, True, "1", None]
STRING_ODDITIES = ["", " ", "x" * 5_000, "\ud800", "\x00", "é" * 300, "a/b", "%2F", 7, None]
LIST_ODDITIES = [[], [None], ["x"] * 100, [[[]]], "x", [""], [{"id": 1}]]
DICT_ODDITIES = [{}, {"a": "b" * 70_000}, {"x": [[[[[[[[]]]]]]]]}, {"": None}, [], None, "x"]


def odd_value_like(original: Any) -> st.SearchStrategy[Any]:
    if isinstance(original, str) and original[:2] in {"19", "20"}:
        return st.sampled_from(TIMESTAMP_ODDITIES)
    if isinstance(original, (bool, int, float)):
        return st.sampled_from(NUMBER_ODDITIES)
    if isinstance(original, str):
        return st.sampled_from(STRING_ODDITIES)
    if isinstance(original, list):
        return st.sampled_from(LIST_ODDITIES)
    return st.sampled_from(DICT_ODDITIES)


content_types = st.sampled_from([
    "application/json", None, "application/json; charset=utf-8", "text/plain",
    "application/x-www-form-urlencoded", "multipart/form-data", "multipart/form-data; boundary=b",
])
path_text = st.one_of(
    st.sampled_from(ODD_STRINGS),
    st.text(alphabet=string.ascii_letters + string.digits + "-._~%:@!$&'()*+,;= ", max_size=20),
)


AUTOMATION = {"name": "fuzzed", "trigger": {"type": "reactive", "threshold": 2,
                                            "within_seconds": 60,
                                            "match": {"names": ["sluice.flow-run.*"]}},
              "actions": [{"type": "run-deployment", "deployment": "etl/nightly",
                           "parameters": {"day": "{{ event.payload.state_name }}"}}]}


def valid_body(route: tuple[str, str], world: dict[str, str]) -> Any:
    """A body the route accepts (mutated below into almost-valid ones)."""
    method, template = route
    if template == "/pools/{name}/flow-runs":
        return {"flow_name": "sub", "parent_flow_run_id": world["flow_run_id"],
                "state": {"type": "PENDING", "timestamp": NOW.isoformat()},
                "lease": "subflow-lease-0123456789"}
    if template == "/flow-runs":
        return {"flow_name": "etl", "deployment_id": world["deployment_id"],
                "parameters": {"day": "mon"}, "tags": ["a"], "scheduled_at": NOW.isoformat()}
    if template.endswith("/state"):
        return state_body("COMPLETED", lease=world["lease"], transition_id="fuzz")
    if template.endswith("/claim"):
        return {"worker": "fuzzer", "attempt": 0}
    if template.endswith("/workers/{worker}/heartbeat"):
        return {"session": "fuzz-session", "slots": 1,
                "leases": [{"flow_run_id": world["flow_run_id"], "lease": world["lease"]}]}
    if template.endswith("/heartbeat"):
        return {"lease": world["lease"]}
    if template.endswith("/cancel"):
        return {"message": "stop"}
    if template.endswith(("/suspend", "/resume")):
        return {"message": "maintenance"}
    if template in ("/events", "/pools/{name}/events"):
        return {"events": [{"name": "etl.file-loaded", "payload": {"key": "a.csv"},
                            "resource": {"kind": "flow-run", "id": world["flow_run_id"]}}]}
    if template.endswith("/events"):
        run_id = world["flow_run_id"]
        return {"task_runs": [{"id": "t1", "flow_run_id": run_id, "task_name": "t", "name": "t-1",
                               "state": {"type": "RUNNING", "timestamp": NOW.isoformat()}}],
                "logs": [{"id": "l1", "flow_run_id": run_id, "timestamp": NOW.isoformat(),
                          "message": "hi"}]}
    if template == "/deployments":
        return {"flow_name": "etl", "name": "fuzzed", "entrypoint": "f.py:etl", "pool": "etl",
                "schedules": [{"interval_seconds": 60, "anchor": NOW.isoformat()}]}
    if template == "/automations":
        return AUTOMATION
    if method == "PATCH" and template.startswith("/automations/"):
        return {"enabled": False}
    if method == "PATCH" and template == "/pools/{name}":
        return {"paused": True}
    if method == "PATCH":
        return {"paused": True, "tags": ["x"]}
    if template.endswith("/backfill"):
        return {"start": (NOW - timedelta(hours=3)).isoformat(), "end": NOW.isoformat(),
                "reprocess": "failed", "max_active": 2}
    if template.endswith("/runs"):
        return {"parameters": {"day": "tue"}, "scheduled_at": NOW.isoformat()}
    if template == "/pools":
        return {"name": "fuzz-pool", "concurrency_limit": 2}
    if template.endswith("/workers"):
        return {"name": "worker-1", "host": "h", "version": "0.1.0", "slots": 2}
    if template == "/bundles":
        return {"sha256": world["sha256"], "size": 1024}
    return {}


@st.composite
def bodies(draw: st.DrawFn, route: tuple[str, str], world: dict[str, str]) -> tuple[Any, bool]:
    """A request body (str or None) and whether it is base64-encoded."""
    base = valid_body(route, world)
    kind = draw(st.sampled_from(["mutated", "mutated", "mutated", "json", "text", "truncated",
                                 "bytes", "none"]))
    if kind == "none":
        return None, False
    if kind == "bytes":
        return base64.b64encode(draw(st.binary(max_size=40))).decode(), True
    if kind == "text":
        return draw(st.one_of(st.text(max_size=40), st.sampled_from(ODD_STRINGS))), False
    if kind == "json":
        return json.dumps(draw(json_values)), draw(st.booleans()) and False
    text = json.dumps(mutate(draw, base) if isinstance(base, dict) else base)
    if kind == "truncated":
        return text[: draw(st.integers(min_value=0, max_value=max(0, len(text) - 1)))], False
    if draw(st.booleans()):
        return base64.b64encode(text.encode()).decode(), True
    return text, False


def mutate(draw: st.DrawFn, body: dict[str, Any]) -> dict[str, Any]:
    """The body with one field (top level or one level down) dropped, added or replaced."""
    body = json.loads(json.dumps(body))
    target = body
    nested = [k for k, v in body.items() if isinstance(v, dict)]
    if nested and draw(st.booleans()):
        target = body[draw(st.sampled_from(sorted(nested)))]
    action = draw(st.sampled_from(["replace", "replace", "drop", "add"]))
    keys = sorted(target)
    if action == "drop" and keys:
        del target[draw(st.sampled_from(keys))]
    elif action == "add" or not keys:
        target[draw(st.text(max_size=8))] = draw(odd_values)
    else:
        key = draw(st.sampled_from(keys))
        target[key] = draw(st.one_of(odd_value_like(target[key]), odd_values))
    return body


@pytest.fixture
def world(api: Api) -> dict[str, str]:
    """Real ids for the path parameters: a deployment, a running run with its lease, logs.
    (Function-scoped: one world per test, shared by that test's hypothesis examples.)"""
    run_id, lease = api.running_run()
    deployment = api.get("/deployments/etl/nightly").json
    api.post(f"/flow-runs/{run_id}/events", {"logs": [
        {"id": "seed", "flow_run_id": run_id, "timestamp": NOW.isoformat(), "message": "x"}]})
    automation_id = api.post("/automations", AUTOMATION).json["id"]
    return {"flow_run_id": run_id, "lease": lease, "deployment_id": deployment["id"],
            "automation_id": automation_id,
            "flow_name": "etl", "name": "nightly", "pool": "etl", "sha256": "ab" * 32,
            "worker": "w1"}


def _world_key(template: str, name: str) -> str:
    """`{name}` is the pool under `/pools`, the deployment's name under `/deployments`."""
    return "pool" if name == "name" and template.startswith("/pools") else name


def fill(template: str, draw: st.DrawFn, world: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        real = world[_world_key(template, name)]
        return draw(st.one_of(st.just(real), path_text))
    return re.sub(r"\{(\w+)\}", value, template)


def assert_well_refused_or_served(api: Api, method: str, path: str, **event: Any) -> None:
    writes_before = len(api.writes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Powertools warns about non-base64 multipart bodies
        response = api.app.resolve(http_event(method, path, **event), LambdaContext())
    answer = read_answer(response)
    assert answer.status < 500, (method, path, event, answer.json)
    if answer.status >= 400:
        assert set(answer.json) == ERROR_KEYS, answer.json
        assert isinstance(answer.json["error"], str) and isinstance(answer.json["message"], str)
        assert api.writes[writes_before:] == [], (method, path, answer.json)


@pytest.mark.parametrize("route", ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_every_route_survives_malformed_bodies_params_and_paths(api, world, route, data):
    method, template = route
    path = fill(template, data.draw, world)
    body, is_base64 = data.draw(bodies(route, world)) if method != "GET" else (None, False)
    content_type = data.draw(content_types)
    query = data.draw(st.dictionaries(
        st.sampled_from(["limit", "cursor", "state_type", "flow_name", "deployment_id", "pool",
                         "scheduled_after", "scheduled_before", "junk"]),
        st.one_of(st.sampled_from(ODD_STRINGS), st.text(max_size=12)), max_size=3))
    headers = {"content-type": content_type} if content_type else {}
    assert_well_refused_or_served(api, method, path, query=query, headers=headers, body=body,
                                  base64_body=is_base64)


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(method=st.sampled_from(["GET", "POST", "PATCH", "DELETE", "PUT", "OPTIONS", "HEAD"]),
       path=st.text(alphabet=string.printable + "é\u202e", max_size=40).map(lambda p: "/" + p))
def test_odd_paths_and_methods_get_json_answers(api, method, path):
    assert_well_refused_or_served(api, method, path)


BODY_ROUTES = [route for route in ROUTES if route[0] in {"POST", "PATCH"}
               and not route[1].endswith("/retry")]
DROPPED = object()


def leaf_paths(value: Any, path: tuple = ()) -> list[tuple]:
    """Every position in a JSON document (containers included), outermost first."""
    paths = [path] if path else []
    children = value.items() if isinstance(value, dict) else (
        enumerate(value) if isinstance(value, list) else ())
    for key, child in children:
        paths += leaf_paths(child, (*path, key))
    return paths


def with_value(document: Any, path: tuple, value: Any) -> Any:
    document = json.loads(json.dumps(document))
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    if value is DROPPED:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return document


def value_at(document: Any, path: tuple) -> Any:
    for key in path:
        document = document[key]
    return document


def oddities_like(original: Any) -> list[Any]:
    if isinstance(original, str) and original[:2] in {"19", "20"}:
        return TIMESTAMP_ODDITIES
    if isinstance(original, (bool, int, float)):
        return NUMBER_ODDITIES
    if isinstance(original, str):
        return STRING_ODDITIES
    return LIST_ODDITIES if isinstance(original, list) else DICT_ODDITIES


@pytest.mark.parametrize("route", BODY_ROUTES, ids=[f"{m} {p}" for m, p in BODY_ROUTES])
def test_every_field_of_every_body_gets_each_almost_right_value(api, world, route):
    """Deterministic companion of the random fuzzing: each position of each route's valid body
    is dropped, then replaced by each almost-right value of its kind (a naive timestamp, a
    negative count, a 5 kB name, a lone surrogate ...)."""
    method, template = route
    path = re.sub(r"\{(\w+)\}", lambda m: world[_world_key(template, m.group(1))], template)
    base = valid_body(route, world)
    for position in leaf_paths(base):
        for value in [DROPPED, *oddities_like(value_at(base, position))]:
            body = json.dumps(with_value(base, position, value))
            assert_well_refused_or_served(api, method, path, body=body)


def test_the_fuzzed_routes_are_every_route_of_the_app(api):
    document = api.get("/openapi.json").json
    documented = {(method.upper(), path) for path, operations in document["paths"].items()
                  for method in operations}
    assert documented == set(ROUTES)
