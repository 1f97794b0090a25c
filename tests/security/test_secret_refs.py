"""Issue 13, secrets: a `{"$secret": name}` reference makes the worker read that secret into
the flow's parameter, so it is accepted only for parameters typed `pydantic.SecretStr` (per the
deployment's parameter schema). Anywhere else - a `str` parameter, a deployment without a
schema - it is refused with a 422 that names the parameter and the fix, for deploy defaults,
schedule parameters, triggers and backfills, and nothing is stored. The flow process is the
second line: it never hands a secret to a parameter not typed SecretStr."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from pydantic import SecretStr

from sluice import flow
from sluice.exceptions import ConfigurationError
from sluice.models import Deployment
from sluice.secrets import clear_cache, resolve_references

from .names_support import GOOD_DEPLOYMENT, api  # noqa: F401 - the fixture

SECRET_VALUE = "s3cr3t-value-never-shown"


@flow(name="login")
def login(user: str, token: SecretStr, note: Any = None) -> str:
    RAN.append(user)
    return "ok"


RAN: list[str] = []
SCHEMA = login.parameter_schema()
REF = {"$secret": "prod/db-password"}


class CountingStore:
    """A secret store that counts reads."""

    def __init__(self) -> None:
        self.reads = 0

    def get(self, name: str) -> str | None:
        self.reads += 1
        return SECRET_VALUE

    def describe(self) -> str:
        return f"counting-{id(self)}"


@pytest.fixture(autouse=True)
def fresh():
    RAN.clear()
    clear_cache()
    yield
    clear_cache()


def deployment_body(**fields: Any) -> dict[str, Any]:
    return {**GOOD_DEPLOYMENT, "flow_name": "login", "entrypoint": "flows.py:login",
            "parameter_schema": SCHEMA, **fields}


def assert_refused(answer, where: str) -> None:  # noqa: ANN001
    assert answer.status == 422, answer.json
    assert answer.json["message"].startswith(where), answer.json["message"]
    assert "SecretStr" in answer.json["message"]


@pytest.mark.parametrize("parameter", ["user", "note"])
def test_a_trigger_cannot_put_a_secret_into_a_plain_parameter(api, parameter):
    # Given a deployment whose `user` is a str and `note` untyped
    deployment = api.post("/deployments", deployment_body()).json
    api.writes.clear()
    # When a run is triggered (by id or by name) with a reference for one of them
    parameters = {"user": "ana", "token": REF, parameter: REF}
    by_id = api.post(f"/deployments/{deployment['id']}/runs", {"parameters": parameters})
    by_name = api.post("/deployments/login/nightly/runs", {"parameters": parameters})
    # Then both are refused naming the parameter, and no run exists
    for answer in (by_id, by_name):
        assert_refused(answer, f"parameters.{parameter}")
    assert api.writes == []
    assert api.get("/flow-runs").json["items"] == []


def test_a_secret_parameter_still_takes_its_reference(api):
    deployment = api.post("/deployments", deployment_body()).json
    answer = api.post(f"/deployments/{deployment['id']}/runs",
                      {"parameters": {"user": "ana", "token": REF}})
    assert answer.status == 201, answer.json
    assert answer.json["parameters"]["token"] == REF


@pytest.mark.parametrize(("fields", "where"), [
    ({"parameters": {"user": REF}}, "default parameters.user"),
    ({"schedules": [{"cron": "0 * * * *", "parameters": {"user": REF, "token": REF}}]},
     "schedules[0].parameters.user"),
    ({"parameter_schema": {}, "parameters": {"token": REF}}, "default parameters.token"),
])
def test_a_deployment_cannot_store_a_reference_for_a_plain_parameter(api, fields, where):
    # Given deploy defaults or schedule parameters with a reference for a non-secret parameter
    # (or a deployment without a schema, where no parameter is known to be a secret)
    # When it is deployed Then it is refused and nothing is stored
    assert_refused(api.post("/deployments", deployment_body(**fields)), where)
    assert api.writes == []
    assert api.get("/deployments").json["items"] == []


def test_a_deployment_without_a_schema_takes_no_reference_at_trigger(api):
    deployment = api.post("/deployments", deployment_body(parameter_schema={})).json
    api.writes.clear()
    answer = api.post(f"/deployments/{deployment['id']}/runs", {"parameters": {"token": REF}})
    assert_refused(answer, "parameters.token")
    assert api.writes == []


def test_a_deployment_stored_with_such_a_reference_runs_nothing(api):
    # Given a deployment stored before the rule, with a reference for its str default
    stored = Deployment(id=str(uuid.uuid4()), flow_name="login", name="legacy",
                        entrypoint="flows.py:login", pool="etl", parameter_schema=SCHEMA,
                        parameters={"user": REF, "token": REF},
                        schedules=[{"id": "hourly", "cron": "0 * * * *"}])
    api.post("/pools", {"name": "etl"})
    api.ports.store.upsert_deployment(stored)
    api.writes.clear()
    # When it is triggered or backfilled
    triggered = api.post(f"/deployments/{stored.id}/runs", {})
    backfilled = api.post(f"/deployments/{stored.id}/backfill",
                          {"start": "2024-04-30T00:00:00Z", "end": "2024-04-30T03:00:00Z"})
    # Then both are refused and no run is created or queued
    assert_refused(triggered, "parameters.user")
    assert backfilled.status == 422 and "SecretStr" in backfilled.json["message"], \
        backfilled.json
    assert [w for w in api.writes if w in ("create_flow_run", "send")] == []
    assert api.get("/flow-runs").json["items"] == []


def test_the_flow_process_reads_no_secret_for_a_plain_parameter():
    # Given parameters that (past the control plane) name a secret for the str parameter
    store = CountingStore()
    # When the worker's flow process resolves them knowing the flow
    with pytest.raises(ConfigurationError, match="'user'.*SecretStr"):
        resolve_references({"user": REF, "token": REF}, store=store, flow=login)
    # Then it refuses before reading any secret, and the flow never ran
    assert store.reads == 0 and RAN == []


def test_a_resolved_secret_is_never_a_plain_string():
    # Given the references resolved without knowing the flow (the older call)
    store = CountingStore()
    resolved = resolve_references({"user": REF, "token": REF}, store=store)
    # Then every value is a SecretStr: the str parameter refuses it, so the flow does not run
    assert all(isinstance(v, SecretStr) for v in resolved.values())
    state = login(**resolved, return_state=True)
    assert state.is_failed() and RAN == []
    assert SECRET_VALUE not in (state.message or "")
    # And a flow typed right gets the value it asked for
    assert login(user="ana", token=resolved["token"]) == "ok" and RAN == ["ana"]
