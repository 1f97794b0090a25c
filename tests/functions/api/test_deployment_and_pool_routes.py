"""The /deployments and /pools routes on the SQLite adapters."""

from __future__ import annotations

from .events import TEST_USER_ARN

SCHEMA = {"type": "object", "properties": {"day": {"type": "string"}}, "required": ["day"]}


# ---- deployments -------------------------------------------------------------------------------

def test_upsert_creates_the_deployment_and_its_pool_recording_the_caller(api):
    answer = api.post("/deployments", {"flow_name": "etl", "name": "nightly",
                                       "entrypoint": "flows.py:etl", "pool": "etl"},
                      user_arn=TEST_USER_ARN)
    assert answer.status == 200
    assert answer.json["created_by"] == TEST_USER_ARN
    assert api.get("/pools/etl").status == 200


def test_upsert_of_the_same_names_replaces_it_and_keeps_its_id(api):
    first = api.deployment(description="v1")
    second = api.deployment(description="v2")
    assert second["id"] == first["id"]
    assert api.get(f"/deployments/{first['id']}").json["description"] == "v2"


def test_upsert_with_an_invalid_cron_is_a_422_naming_the_schedule(api):
    answer = api.post("/deployments", {"flow_name": "etl", "name": "n", "entrypoint": "f.py:etl",
                                       "schedules": [{"cron": "every day"}]})
    assert answer.status == 422
    assert answer.json["details"][0]["loc"] == ["schedules[0]", "cron"]
    assert api.writes == []


def test_upsert_with_a_naive_schedule_anchor_is_a_422(api):
    answer = api.post("/deployments", {"flow_name": "etl", "name": "n", "entrypoint": "f.py:etl",
                                       "schedules": [{"interval_seconds": 60,
                                                      "anchor": "2024-05-01T00:00:00"}]})
    assert answer.status == 422
    assert answer.json["details"][0]["loc"] == ["body", "schedules", 0, "anchor"]
    assert api.writes == []


def test_list_deployments_filters_by_flow_and_pages(api):
    for flow, name in [("a", "x"), ("a", "y"), ("b", "z")]:
        api.post("/deployments", {"flow_name": flow, "name": name, "entrypoint": "f.py:f"})
    first = api.get("/deployments", query={"flow_name": "a", "limit": "1"}).json
    second = api.get("/deployments", query={"flow_name": "a", "limit": "1",
                                            "cursor": first["next_cursor"]}).json
    assert [d["name"] for d in first["items"] + second["items"]] == ["x", "y"]


def test_get_by_id_and_by_flow_slash_name_find_the_same_deployment(api):
    deployment = api.deployment()
    by_id = api.get(f"/deployments/{deployment['id']}")
    by_name = api.get("/deployments/etl/nightly")
    assert by_id.json == by_name.json == deployment


def test_get_unknown_deployment_is_a_404_in_both_forms(api):
    assert api.get("/deployments/nope").status == 404
    assert api.get("/deployments/etl/nope").status == 404


def test_patch_by_name_pauses_and_patch_by_id_resumes(api):
    deployment = api.deployment()
    paused = api.patch("/deployments/etl/nightly", {"paused": True})
    resumed = api.patch(f"/deployments/{deployment['id']}", {"paused": False})
    assert paused.json["paused"] is True
    assert resumed.json["paused"] is False


def test_patch_with_an_unknown_field_is_a_422_and_writes_nothing(api):
    api.deployment()
    before = len(api.writes)
    answer = api.patch("/deployments/etl/nightly", {"pool": "elsewhere"})
    assert answer.status == 422
    assert answer.json["details"][0]["loc"] == ["body", "pool"]
    assert len(api.writes) == before


def test_delete_answers_204_and_the_deployment_is_gone(api):
    deployment = api.deployment()
    answer = api.delete("/deployments/etl/nightly")
    assert answer.status == 204 and answer.json is None
    assert api.get(f"/deployments/{deployment['id']}").status == 404
    assert api.delete(f"/deployments/{deployment['id']}").status == 404


def test_run_by_name_creates_a_run_with_merged_parameters_in_the_pool(api):
    # Given a deployment with a default parameter
    api.deployment(parameters={"day": "mon", "retries": 1})
    # When it is run by name with one parameter overridden
    answer = api.post("/deployments/etl/nightly/runs", {"parameters": {"day": "tue"}},
                      user_arn=TEST_USER_ARN)
    # Then the run has both, is in the deployment's pool, and remembers its creator
    assert answer.status == 201
    assert answer.json["parameters"] == {"day": "tue", "retries": 1}
    assert answer.json["pool"] == "etl"
    assert answer.json["created_by"] == TEST_USER_ARN


def test_run_with_parameters_that_break_the_schema_is_a_422_naming_them(api):
    deployment = api.deployment(parameter_schema=SCHEMA)
    before = len(api.writes)
    answer = api.post(f"/deployments/{deployment['id']}/runs", {"parameters": {"day": 3}})
    assert answer.status == 422
    assert answer.json["details"][0]["loc"] == ["parameters", "day"]
    assert len(api.writes) == before


def test_run_of_an_unknown_deployment_is_a_404(api):
    assert api.post("/deployments/etl/nope/runs").status == 404


# ---- pools -------------------------------------------------------------------------------------

def test_create_pool_is_idempotent_and_lists_by_name(api):
    first = api.post("/pools", {"name": "gpu", "concurrency_limit": 2})
    again = api.post("/pools", {"name": "gpu", "concurrency_limit": 4})
    api.post("/pools", {"name": "cpu"})
    assert first.status == again.status == 200
    assert again.json["concurrency_limit"] == 4
    listed = api.get("/pools").json
    assert [p["name"] for p in listed["items"]] == ["cpu", "gpu"]
    assert listed["next_cursor"] is None


def test_get_pool_shows_queue_depth_workers_and_running_runs(api):
    # Given a pool with one queued run and one claimed by worker w1
    api.queued_run()
    api.claimed_run("w1")
    # When the pool is read
    pool = api.get("/pools/etl").json
    # Then it shows both messages, the worker, and the run holding a slot
    assert pool["queue_depth"] == 2
    assert [w["name"] for w in pool["workers"]] == ["w1"]
    assert pool["workers"][0]["online"] is True
    assert pool["running"] == 1


def test_pool_with_an_invalid_name_is_a_422(api):
    assert api.post("/pools", {"name": "Not Valid"}).status == 422
    assert api.get("/pools/Not_Valid").status == 422


def test_unknown_pool_is_a_404(api):
    answer = api.get("/pools/nope")
    assert (answer.status, answer.error) == (404, "not_found")
