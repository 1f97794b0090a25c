"""No route answers 500 for a stored value: records written before today's bounds (or damaged)
are read, acted on, or refused with a 4xx that names the problem; and numbers over their bound
are refused where they enter with a 422 naming the field and the bound."""

from __future__ import annotations

import json
from datetime import timedelta

from sluice.models import (
    MAX_CONCURRENCY_LIMIT,
    MAX_RETRIES,
    MAX_RETRY_DELAY_SECONDS,
    FlowRun,
)
from sluice_functions.monitoring import monitor_runs

from .conftest import Api, state_body


def store_of(api: Api):
    return api.ports.store.adapter


def with_stored(api: Api, run_id: str, **fields) -> FlowRun:
    """Overwrite fields of the stored run as legacy data would hold them (no validation)."""
    store = store_of(api)
    return store.update_flow_run(store.get_flow_run(run_id).model_copy(update=fields))


def with_stored_doc(api: Api, run_id: str, **fields) -> None:
    """Overwrite fields of the stored run's JSON document itself: values no model accepts."""
    store = store_of(api)
    with store._db.write() as conn:
        doc = json.loads(conn.execute("SELECT doc FROM flow_runs WHERE id = ?",
                                      (run_id,)).fetchone()["doc"])
        conn.execute("UPDATE flow_runs SET doc = ? WHERE id = ?",
                     (json.dumps({**doc, **fields}), run_id))


def test_failing_a_run_with_an_extreme_stored_retry_delay_answers_without_a_500(api):
    # Given a Running run with retries whose stored retry delay predates the bounds (1e12 s:
    # `now + timedelta(...)` overflowed, and the worker's Failed report answered 500),
    run_id, lease = api.running_run()
    with_stored(api, run_id, retries=3, retry_delay_seconds=1e12)
    # When its worker reports it Failed,
    answer = api.post(f"/flow-runs/{run_id}/state", state_body("FAILED", lease=lease))
    # Then it awaits its retry, at most MAX_RETRY_DELAY_SECONDS from now.
    assert answer.status == 200, answer.json
    assert answer.json["state"]["name"] == "AwaitingRetry"
    retry_at = FlowRun.model_validate(api.get(f"/flow-runs/{run_id}").json).scheduled_at
    assert retry_at == api.clock() + timedelta(seconds=MAX_RETRY_DELAY_SECONDS)


def test_a_run_stored_with_an_infinite_retry_delay_is_crashed_and_shown(api):
    # Given a silent Running run whose document holds the JSON token Infinity (Python's json
    # writes float("inf") so),
    run_id, _ = api.running_run()
    with_stored(api, run_id, retries=1)
    store = store_of(api)
    with store._db.write() as conn:
        doc = conn.execute("SELECT doc FROM flow_runs WHERE id = ?", (run_id,)).fetchone()["doc"]
        doc = doc.replace('"retry_delay_seconds":0.0', '"retry_delay_seconds":Infinity')
        assert "Infinity" in doc
        conn.execute("UPDATE flow_runs SET doc = ? WHERE id = ?", (doc, run_id))
    # When the monitor ticks past its lease, Then it awaits a retry (at the bounded delay),
    api.clock.advance(600)
    result = monitor_runs(store=api.ports.store, queue=api.ports.queue, metrics=api.metrics,
                          now=api.clock(), heartbeat_timeout=30)
    assert (result.retried, result.failed) == (1, 0)
    # and every route reads it.
    shown = api.get(f"/flow-runs/{run_id}")
    assert shown.status == 200 and shown.json["state"]["name"] == "AwaitingRetry"
    assert api.get("/flow-runs").status == 200


def test_an_unreadable_stored_run_is_skipped_by_lists_and_refused_by_name(api):
    # Given two runs, one whose stored document no longer validates as a FlowRun,
    bad_id, bad_lease = api.running_run()
    good_id, _ = api.running_run()
    with_stored_doc(api, bad_id, retry_delay_seconds=None, run_count="many")
    # When it is read by id, Then the answer is a 409 naming the record and the field,
    answer = api.get(f"/flow-runs/{bad_id}")
    assert answer.status == 409 and answer.json["error"] == "unreadable_record"
    assert bad_id in answer.json["message"] and "run_count" in answer.json["message"]
    for path, body in ((f"/flow-runs/{bad_id}/state", state_body("FAILED", lease=bad_lease)),
                       (f"/flow-runs/{bad_id}/cancel", None),
                       (f"/flow-runs/{bad_id}/heartbeat", {"lease": bad_lease})):
        assert api.post(path, body).status == 409
    # a list skips it and shows the others,
    listed = api.get("/flow-runs", query={"state_type": "RUNNING"})
    assert listed.status == 200 and [r["id"] for r in listed.json["items"]] == [good_id]
    # and the monitor crashes the other silent run without stopping at it.
    api.clock.advance(600)
    result = monitor_runs(store=api.ports.store, queue=api.ports.queue, metrics=api.metrics,
                          now=api.clock(), heartbeat_timeout=30)
    assert result.crashed == 1
    assert api.get(f"/flow-runs/{good_id}").json["state"]["type"] == "CRASHED"


def test_an_unreadable_stored_deployment_is_skipped_by_lists_and_replaced_by_a_deploy(api):
    good = api.deployment(name="good")
    bad = api.deployment(name="bad")
    store = store_of(api)
    with store._db.write() as conn:
        conn.execute("UPDATE deployments SET doc = ? WHERE id = ?",
                     (json.dumps({"id": bad["id"], "flow_name": "etl", "name": "bad",
                                  "pool": 7}), bad["id"]))
    assert api.get(f"/deployments/{bad['id']}").status == 409
    assert [d["id"] for d in api.get("/deployments").json["items"]] == [good["id"]]
    # Deploying it again replaces the unreadable record, keeping its id.
    again = api.deployment(name="bad")
    assert again["id"] == bad["id"] and api.get(f"/deployments/{bad['id']}").status == 200


def test_numbers_over_their_bound_are_refused_with_a_422_naming_field_and_bound(api):
    deployment = api.deployment()
    cases = [
        ("/flow-runs", {"flow_name": "etl", "deployment_id": deployment["id"],
                        "retries": MAX_RETRIES + 1}, "retries", MAX_RETRIES),
        ("/flow-runs", {"flow_name": "etl", "deployment_id": deployment["id"],
                        "retry_delay_seconds": 1e12}, "retry_delay_seconds",
         MAX_RETRY_DELAY_SECONDS),
        ("/deployments", {"flow_name": "etl", "name": "n", "entrypoint": "f.py:f",
                          "concurrency_limit": MAX_CONCURRENCY_LIMIT + 1},
         "concurrency_limit", MAX_CONCURRENCY_LIMIT),
        ("/deployments", {"flow_name": "etl", "name": "n", "entrypoint": "f.py:f",
                          "retry_delay_seconds": 1e12}, "retry_delay_seconds",
         MAX_RETRY_DELAY_SECONDS),
        ("/pools", {"name": "p", "concurrency_limit": 10**9}, "concurrency_limit",
         MAX_CONCURRENCY_LIMIT),
        (f"/deployments/{deployment['id']}/backfill",
         {"start": "2024-04-01T00:00:00Z", "end": "2024-04-02T00:00:00Z",
          "max_active": 10**6}, "max_active", 10_000),
    ]
    for path, body, field, limit in cases:
        answer = api.post(path, body)
        assert answer.status == 422, (path, answer.json)
        assert field in answer.json["message"] and str(limit) in answer.json["message"]
        assert answer.json["details"][0]["limit"] == limit
    answer = api.patch(f"/deployments/{deployment['id']}", {"concurrency_limit": 10**9})
    assert answer.status == 422 and answer.json["details"][0]["limit"] == MAX_CONCURRENCY_LIMIT
    answer = api.post("/deployments", {"flow_name": "etl", "name": "n", "entrypoint": "f.py:f",
                                       "schedules": [{"interval_seconds": 1e12}]})
    assert answer.status == 422
    assert "interval_seconds" in answer.json["message"] and "31622400" in answer.json["message"]
    assert api.writes.count("create_flow_run") == 0
