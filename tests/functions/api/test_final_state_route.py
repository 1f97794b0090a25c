"""Issue 20 through the real API handler (SQLite adapters): a batch that carries the run's
final state, and a claim that starts its run - next to the old request shapes, which stay."""

from __future__ import annotations

from .conftest import NOW
from .test_flow_run_routes import log_line, task_run


def test_a_batch_with_the_final_state_stores_its_records_then_ends_the_run(api):
    # Given a running run
    run_id, lease = api.running_run()
    batch = {"task_runs": [task_run(run_id, "extract-1")], "logs": [log_line(run_id, 1)],
             "lease": lease, "transition_id": "t-end",
             "state": {"type": "COMPLETED", "timestamp": NOW.isoformat()}}
    # When its last batch carries Completed (twice: the answer was lost)
    first = api.post(f"/flow-runs/{run_id}/events", batch)
    again = api.post(f"/flow-runs/{run_id}/events", batch)
    # Then the records and the state are stored once, and both answers accept it
    assert first.status == 200 and first.json["task_runs"] == 1
    assert first.json["transition"]["status"] == "ACCEPT"
    assert again.json["transition"]["status"] == "ACCEPT"
    assert api.get(f"/flow-runs/{run_id}").json["state"]["type"] == "COMPLETED"
    assert [t["name"] for t in api.get(f"/flow-runs/{run_id}/task-runs").json["items"]] == [
        "extract-1"]
    names = [s["name"] for s in api.get(f"/flow-runs/{run_id}/history").json]
    assert names.count("Completed") == 1


def test_a_batch_with_a_state_and_a_stale_lease_gets_409_and_writes_nothing(api):
    run_id, _ = api.running_run()
    batch = {"task_runs": [task_run(run_id, "extract-1")], "logs": [], "lease": "stale-lease",
             "transition_id": "t-end",
             "state": {"type": "COMPLETED", "timestamp": NOW.isoformat()}}
    answer = api.post(f"/flow-runs/{run_id}/events", batch)
    assert answer.status == 409 and "message" in answer.json
    assert api.get(f"/flow-runs/{run_id}").json["state"]["type"] == "RUNNING"
    assert api.get(f"/flow-runs/{run_id}/task-runs").json["items"] == []


def test_a_batch_with_a_state_but_no_transition_id_is_a_422_that_names_it(api):
    run_id, lease = api.running_run()
    batch = {"task_runs": [], "logs": [], "lease": lease,
             "state": {"type": "COMPLETED", "timestamp": NOW.isoformat()}}
    answer = api.post(f"/flow-runs/{run_id}/events", batch)
    assert answer.status == 422 and "transition_id" in str(answer.json)
