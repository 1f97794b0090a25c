"""The /flow-runs routes on the SQLite adapters: each route's happy path and its refusals."""

from __future__ import annotations

import uuid

import pytest

from .conftest import NOW, state_body
from .events import TEST_USER_ARN


def task_run(run_id: str, name: str, *, version: int = 1, state: str = "COMPLETED") -> dict:
    return {"id": f"{run_id[:8]}-{name}", "flow_run_id": run_id, "task_name": name.split("-")[0],
            "name": name, "state": {"type": state, "timestamp": NOW.isoformat()},
            "version": version}


def log_line(run_id: str, n: int, message: str = "hello") -> dict:
    return {"id": f"log-{n}", "flow_run_id": run_id, "timestamp": f"2024-05-01T12:00:{n:02d}Z",
            "level": "INFO", "message": f"{message} {n}"}


# ---- create, read, list ----------------------------------------------------------------------

def test_create_answers_201_with_a_scheduled_run_recorded_as_created_by_the_iam_caller(api):
    # When a signed request creates a run
    answer = api.post("/flow-runs", {"flow_name": "adhoc", "parameters": {"n": 1}},
                      user_arn=TEST_USER_ARN)
    # Then it is Scheduled now, and remembers who created it
    assert answer.status == 201
    assert answer.json["state"]["type"] == "SCHEDULED"
    assert answer.json["parameters"] == {"n": 1}
    assert answer.json["created_by"] == TEST_USER_ARN
    assert api.get(f"/flow-runs/{answer.json['id']}").json["created_by"] == TEST_USER_ARN


def test_create_without_iam_identity_records_the_local_caller(api):
    answer = api.post("/flow-runs", {"flow_name": "adhoc"})
    assert answer.json["created_by"] == "local"


def test_create_twice_with_one_idempotency_key_creates_one_run(api):
    # Given a run created with an idempotency key
    first = api.post("/flow-runs", {"flow_name": "adhoc", "idempotency_key": "k1"})
    # When the same request comes again
    second = api.post("/flow-runs", {"flow_name": "adhoc", "idempotency_key": "k1"})
    # Then it answers with the first run
    assert second.json["id"] == first.json["id"]
    assert len(api.get("/flow-runs").json["items"]) == 1


def test_create_with_a_client_id_of_another_flow_is_a_409(api):
    run_id = uuid.uuid4().hex
    api.post("/flow-runs", {"flow_name": "a", "id": run_id})
    answer = api.post("/flow-runs", {"flow_name": "b", "id": run_id})
    assert (answer.status, answer.error) == (409, "conflict")


def test_create_later_run_keeps_its_scheduled_time(api):
    answer = api.post("/flow-runs", {"flow_name": "adhoc", "scheduled_at": "2024-05-02T00:00:00Z"})
    assert answer.json["scheduled_at"] == "2024-05-02T00:00:00Z"


def test_get_unknown_run_is_a_404(api):
    answer = api.get("/flow-runs/nope")
    assert (answer.status, answer.error) == (404, "not_found")


def test_list_filters_by_flow_deployment_state_and_time_range(api):
    # Given runs of two flows, one of them running, scheduled at different times
    deployed = api.queued_run()
    api.post("/flow-runs", {"flow_name": "other", "scheduled_at": "2024-04-01T00:00:00Z"})
    running_id, _ = api.running_run()
    # When / Then each filter narrows the list
    assert ids(api.get("/flow-runs", query={"flow_name": "other"})) == 1
    by_deployment = api.get("/flow-runs", query={"deployment_id": deployed["deployment_id"]})
    assert ids(by_deployment) == 2
    by_name = api.get("/flow-runs", query={"deployment_id": "etl/nightly"})
    assert ids(by_name) == 2
    running = api.get("/flow-runs", query={"state_type": ["RUNNING", "FAILED"]})
    assert [r["id"] for r in running.json["items"]] == [running_id]
    april = api.get("/flow-runs", query={"scheduled_after": "2024-04-01T00:00:00",
                                         "scheduled_before": "2024-04-02T00:00:00Z"})
    assert [r["flow_name"] for r in april.json["items"]] == ["other"]


def ids(answer) -> int:
    assert answer.status == 200, answer.json
    return len(answer.json["items"])


def test_list_pages_with_limit_and_cursor_until_next_cursor_is_null(api):
    # Given five runs
    for n in range(5):
        api.post("/flow-runs",
                 {"flow_name": "adhoc", "scheduled_at": f"2024-05-0{n + 1}T00:00:00Z"})
    # When listing two at a time
    seen, cursor = [], None
    while True:
        query = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = api.get("/flow-runs", query=query).json
        seen += [r["scheduled_at"] for r in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    # Then every run comes once, newest first
    assert seen == [f"2024-05-0{n}T00:00:00Z" for n in (5, 4, 3, 2, 1)]


def test_list_refuses_a_limit_out_of_range_and_names_it(api):
    answer = api.get("/flow-runs", query={"limit": "0"})
    assert (answer.status, answer.error) == (422, "validation_error")
    assert answer.json["details"][0]["loc"] == ["query", "limit"]


def test_list_refuses_an_unknown_state_type(api):
    answer = api.get("/flow-runs", query={"state_type": "SLEEPING"})
    assert answer.status == 422
    assert answer.json["details"][0]["loc"][:2] == ["query", "state_type"]


def test_list_refuses_an_undecodable_cursor(api):
    answer = api.get("/flow-runs", query={"cursor": "not-a-cursor"})
    assert (answer.status, answer.error) == (400, "bad_request")


def test_list_refuses_a_time_range_that_ends_before_it_starts(api):
    answer = api.get("/flow-runs", query={"scheduled_after": "2024-05-02T00:00:00Z",
                                          "scheduled_before": "2024-05-01T00:00:00Z"})
    assert answer.status == 422


def test_list_by_unknown_deployment_name_is_a_404(api):
    assert api.get("/flow-runs", query={"deployment_id": "etl/nope"}).status == 404


def test_history_lists_every_state_oldest_first(api):
    run_id, _ = api.running_run()
    answer = api.get(f"/flow-runs/{run_id}/history")
    assert [s["type"] for s in answer.json] == ["SCHEDULED", "PENDING", "RUNNING"]
    assert api.get("/flow-runs/nope/history").status == 404


# ---- state, claim, heartbeat, cancel, retry ----------------------------------------------------

def test_claim_moves_the_run_to_pending_and_returns_the_lease(api):
    run = api.queued_run()
    answer = api.post(f"/flow-runs/{run['id']}/claim", {"worker": "w1"})
    assert answer.status == 200
    assert answer.json["lease"]
    assert answer.json["flow_run"]["state"]["type"] == "PENDING"
    # the lease is shown to the claimant only
    assert api.get(f"/flow-runs/{run['id']}").json["lease"] is None


def test_a_second_claim_by_another_worker_is_a_409(api):
    run_id, _ = api.claimed_run("w1")
    answer = api.post(f"/flow-runs/{run_id}/claim", {"worker": "w2"})
    assert answer.status == 409


def test_state_accepts_a_transition_with_the_lease_and_repeats_are_no_ops(api):
    # Given a running run
    run_id, lease = api.running_run()
    body = state_body("COMPLETED", lease=lease, transition_id="done-1")
    # When its worker completes it, twice with one transition id
    first = api.post(f"/flow-runs/{run_id}/state", body)
    writes_before_repeat = len(api.writes)
    repeat = api.post(f"/flow-runs/{run_id}/state", body)
    # Then both are accepted and the repeat wrote nothing
    assert first.json["status"] == repeat.json["status"] == "ACCEPT"
    assert repeat.json["state"]["type"] == "COMPLETED"
    assert len(api.writes) == writes_before_repeat
    assert api.get(f"/flow-runs/{run_id}").json["end_time"] is not None


def test_state_with_a_stale_lease_is_a_409_and_writes_nothing(api):
    run_id, _ = api.running_run()
    before = len(api.writes)
    answer = api.post(f"/flow-runs/{run_id}/state", state_body("COMPLETED", lease="stale"))
    assert (answer.status, answer.error) == (409, "stale_lease")
    assert len(api.writes) == before


def test_state_out_of_a_terminal_state_is_answered_with_the_reason(api):
    # Given a completed run
    run_id, lease = api.running_run()
    api.post(f"/flow-runs/{run_id}/state", state_body("COMPLETED", lease=lease))
    # When something tries to move it back to Running
    answer = api.post(f"/flow-runs/{run_id}/state", state_body("RUNNING", lease=lease))
    # Then it is refused (200, not an error) with the reason and the current state
    assert answer.status == 200
    assert answer.json["status"] in {"REJECT", "ABORT"}
    assert answer.json["reason"]
    assert answer.json["state"]["type"] == "COMPLETED"


def test_state_message_over_its_limit_is_a_413(api):
    run_id, lease = api.running_run()
    answer = api.post(f"/flow-runs/{run_id}/state",
                      state_body("FAILED", lease=lease, message="x" * 4_001))
    assert (answer.status, answer.error) == (413, "payload_too_large")
    assert answer.json["details"] == [{"loc": ["body", "state", "message"], "limit": 4_000,
                                       "msg": "String should have at most 4000 characters",
                                       "type": "string_too_long"}]


def test_heartbeat_says_whether_cancellation_was_requested(api):
    # Given a running run
    run_id, lease = api.running_run()
    # When its worker heartbeats, then once more after a cancel
    before = api.post(f"/flow-runs/{run_id}/heartbeat", {"lease": lease})
    api.post(f"/flow-runs/{run_id}/cancel", {"message": "stop please"})
    after = api.post(f"/flow-runs/{run_id}/heartbeat", {"lease": lease})
    # Then only the second answer asks it to cancel
    assert before.json["cancel_requested"] is False
    assert after.json["cancel_requested"] is True
    assert after.json["state"]["type"] == "CANCELLING"


def test_heartbeat_with_a_stale_lease_is_a_409(api):
    run_id, _ = api.running_run()
    answer = api.post(f"/flow-runs/{run_id}/heartbeat", {"lease": "stale"})
    assert (answer.status, answer.error) == (409, "stale_lease")


def test_cancel_of_a_scheduled_run_cancels_it_at_once_without_a_body(api):
    run = api.queued_run()
    answer = api.post(f"/flow-runs/{run['id']}/cancel")
    assert answer.json["status"] == "ACCEPT"
    assert answer.json["state"]["type"] == "CANCELLED"


def test_cancel_of_an_unknown_run_is_a_404(api):
    assert api.post("/flow-runs/nope/cancel").status == 404


def test_retry_of_a_failed_run_schedules_it_again(api):
    # Given a failed run
    run_id, lease = api.running_run()
    api.post(f"/flow-runs/{run_id}/state", state_body("FAILED", lease=lease))
    # When it is retried
    answer = api.post(f"/flow-runs/{run_id}/retry")
    # Then it is Scheduled again
    assert answer.json["status"] == "ACCEPT"
    assert answer.json["state"]["type"] == "SCHEDULED"


def test_retry_of_a_scheduled_run_is_refused_with_the_reason(api):
    run = api.queued_run()
    answer = api.post(f"/flow-runs/{run['id']}/retry")
    assert answer.status == 200
    assert answer.json["status"] != "ACCEPT"
    assert answer.json["reason"]


# ---- events, task runs, logs --------------------------------------------------------------------

def test_events_store_task_runs_and_logs_and_a_replay_changes_nothing(api):
    # Given a running run and a batch of two task runs and three log lines
    run_id, lease = api.running_run()
    batch = {"task_runs": [task_run(run_id, "extract-1"), task_run(run_id, "load-1")],
             "logs": [log_line(run_id, n) for n in range(3)], "lease": lease}
    # When the batch is posted twice
    first = api.post(f"/flow-runs/{run_id}/events", batch)
    api.post(f"/flow-runs/{run_id}/events", batch)
    # Then it was accepted and each record is stored once
    assert first.json == {"task_runs": 2, "logs": 3}
    task_runs = api.get(f"/flow-runs/{run_id}/task-runs").json
    assert [t["name"] for t in task_runs["items"]] == ["extract-1", "load-1"]
    logs = api.get(f"/flow-runs/{run_id}/logs").json
    assert [line["message"] for line in logs["items"]] == ["hello 0", "hello 1", "hello 2"]


def test_events_of_another_run_are_refused_and_nothing_is_written(api):
    run_id, _ = api.running_run()
    before = len(api.writes)
    answer = api.post(f"/flow-runs/{run_id}/events",
                      {"task_runs": [task_run(run_id, "a-1")], "logs": [log_line("other", 1)]})
    assert answer.status == 422
    assert answer.json["details"][0]["loc"] == ["logs[0]", "flow_run_id"]
    assert len(api.writes) == before


@pytest.mark.parametrize("lease", [None, "not-its-lease"])
def test_events_without_the_runs_lease_are_refused_and_nothing_is_written(api, lease):
    run_id, _ = api.running_run()
    before = len(api.writes)
    answer = api.post(f"/flow-runs/{run_id}/events", {"logs": [log_line(run_id, 1)]}
                      | ({"lease": lease} if lease else {}))
    assert (answer.status, answer.error) == (409, "stale_lease")
    assert len(api.writes) == before


def test_after_a_run_ended_its_last_lines_are_kept_but_no_task_run_opens_again(api):
    run_id, lease = api.running_run()
    api.post(f"/flow-runs/{run_id}/state", state_body("COMPLETED", lease=lease))
    late = api.post(f"/flow-runs/{run_id}/events",
                    {"task_runs": [task_run(run_id, "zombie-1", state="RUNNING")],
                     "logs": [log_line(run_id, 9)],
                     "lease": lease})
    assert late.json == {"task_runs": 0, "logs": 1}
    assert api.get(f"/flow-runs/{run_id}/task-runs").json["items"] == []
    stale = api.post(f"/flow-runs/{run_id}/events",
                     {"logs": [log_line(run_id, 8)], "lease": "an-older-attempt"})
    assert (stale.status, stale.error) == (409, "stale_lease")


def test_events_for_an_unknown_run_are_a_404(api):
    answer = api.post("/flow-runs/nope/events", {"logs": [log_line("nope", 1)]})
    assert answer.status == 404


def test_events_batch_over_the_record_limit_is_a_413(api):
    run_id, _ = api.running_run()
    answer = api.post(f"/flow-runs/{run_id}/events",
                      {"logs": [log_line(run_id, n % 60) | {"id": f"l{n}"} for n in range(501)]})
    assert (answer.status, answer.error) == (413, "payload_too_large")


def test_logs_follow_with_the_cursor(api):
    # Given a run with two log lines read to the end
    run_id, lease = api.running_run()
    api.post(f"/flow-runs/{run_id}/events", {"logs": [log_line(run_id, 1), log_line(run_id, 2)],
                                             "lease": lease})
    page = api.get(f"/flow-runs/{run_id}/logs", query={"limit": "1"}).json
    rest = api.get(f"/flow-runs/{run_id}/logs", query={"cursor": page["next_cursor"]}).json
    # When another line arrives and the follower reads on from its cursor
    api.post(f"/flow-runs/{run_id}/events", {"logs": [log_line(run_id, 3)], "lease": lease})
    new = api.get(f"/flow-runs/{run_id}/logs", query={"cursor": rest["next_cursor"]}).json
    # Then it sees each line once, in order
    assert [line["message"] for line in page["items"] + rest["items"] + new["items"]] == [
        "hello 1", "hello 2", "hello 3"]


def test_task_runs_page_with_limit_and_cursor(api):
    run_id, lease = api.running_run()
    api.post(f"/flow-runs/{run_id}/events",
             {"task_runs": [task_run(run_id, f"t-{n}") for n in range(3)], "lease": lease})
    first = api.get(f"/flow-runs/{run_id}/task-runs", query={"limit": "2"}).json
    second = api.get(f"/flow-runs/{run_id}/task-runs",
                     query={"limit": "2", "cursor": first["next_cursor"]}).json
    assert len(first["items"]) == 2 and len(second["items"]) == 1
    assert second["next_cursor"] is None


def test_task_runs_and_logs_of_an_unknown_run_are_404s(api):
    assert api.get("/flow-runs/nope/task-runs").status == 404
    assert api.get("/flow-runs/nope/logs").status == 404
