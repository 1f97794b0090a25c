"""Finding a run by what an operator types, deleting finished runs, pausing and deleting pools:
the client methods the CLI calls, against the embedded server (SQLite store, queue and logs).

Given one embedded server for the module; each test works in its own flow and pool names.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from sluice import tokens
from sluice.client.api import SluiceClient
from sluice.exceptions import Conflict, NotFound
from sluice.models import (
    Completed,
    DeploymentCreate,
    EventsBatch,
    FlowRunCreate,
    LogRecord,
    Pending,
    PoolCreate,
    Running,
    StateType,
    TaskRun,
    new_id,
)
from sluice.profiles import Connection
from sluice_functions.embedded.server import EmbeddedServer

OPERATOR = tokens.new_operator_token()
LEASE = "lease-" + "x" * 26


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[EmbeddedServer]:
    data = tmp_path_factory.mktemp("resolve-delete") / "data"
    server = EmbeddedServer(data_dir=data, port=0, token=OPERATOR, tick_seconds=3600).start()
    yield server
    server.stop()


@pytest.fixture
def api(server) -> Iterator[SluiceClient]:
    with SluiceClient(Connection(server.url, OPERATOR), attempts=1) as client:
        yield client


@pytest.fixture
def flow() -> str:
    """A flow name of this test only, so runs of other tests never match its references."""
    return f"flow-{uuid.uuid4().hex[:8]}"


def scheduled_run(api: SluiceClient, flow: str, *, run_id: str | None = None,
                  name: str | None = None, minutes_ago: int = 0):
    at = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    return api.create_flow_run(FlowRunCreate(flow_name=flow, id=run_id or new_id(), name=name,
                                             scheduled_at=at))


def completed_run_with_records(api: SluiceClient, flow: str):
    """A run its creator ran to Completed, with two task runs and two log lines."""
    run = api.create_flow_run(FlowRunCreate(flow_name=flow, id=new_id(), state=Pending(),
                                            lease=LEASE))
    api.set_flow_run_state(run.id, Running(), new_id(), lease=LEASE)
    now = datetime.now(UTC)
    api.send_events(run.id, EventsBatch(
        lease=LEASE,
        task_runs=[TaskRun(id=new_id(), flow_run_id=run.id, task_name="t", name=f"t-{n}",
                           state=Completed(), version=1) for n in (1, 2)],
        logs=[LogRecord(id=f"log-{n}", flow_run_id=run.id, timestamp=now, message=f"line {n}")
              for n in (1, 2)]))
    api.set_flow_run_state(run.id, Completed(), new_id(), lease=LEASE)
    return run


def pool_with_deployment(api: SluiceClient, flow: str) -> tuple[str, str]:
    pool = f"p-{uuid.uuid4().hex[:8]}"
    api.create_pool(PoolCreate(name=pool))
    api.create_deployment(DeploymentCreate(flow_name=flow, name="nightly", entrypoint="f.py:f",
                                           pool=pool))
    return pool, f"{flow}/nightly"


def claim(server: EmbeddedServer, pool: str, run_id: str, *,
          requeue: bool = True) -> httpx.Response:
    """A claim as a worker of `pool` makes it: its token, its pool's route."""
    token = tokens.pool_token(OPERATOR, pool)
    with httpx.Client(base_url=server.url, timeout=10,
                      headers={"authorization": f"Bearer {token}"}) as http:
        return http.post(f"/pools/{pool}/flow-runs/{run_id}/claim",
                         json={"worker": "w1", "requeue": requeue})


# ---- resolve -----------------------------------------------------------------------------------

def test_a_run_is_found_by_full_id_prefix_suffix_and_name(api, flow):
    # Given a run with a known id and name
    run_id = new_id()
    run = scheduled_run(api, flow, run_id=run_id, name=f"brave-{flow}")
    # When it is resolved by each kind of reference, Then each finds it
    assert api.resolve_flow_run(run_id).id == run.id
    assert api.resolve_flow_run(run_id.upper()).id == run.id
    assert api.resolve_flow_run(run_id[-8:]).id == run.id      # the short id tables show
    assert api.resolve_flow_run(run_id[-6:]).id == run.id
    assert api.resolve_flow_run(f"brave-{flow}").id == run.id
    # And a prefix works when it is unique (ids of this test start with a fresh random part)
    unique_prefix = "f" * 6 + uuid.uuid4().hex
    prefixed = scheduled_run(api, flow, run_id=unique_prefix)
    assert api.resolve_flow_run(unique_prefix[:10]).id == prefixed.id


def test_an_ambiguous_reference_lists_the_candidates_and_the_fix(api, flow):
    # Given seven runs whose ids share a prefix, and two runs sharing a name
    shared = "e" * 4 + uuid.uuid4().hex[:8]
    for n in range(7):
        scheduled_run(api, flow, run_id=f"{shared}{n:020d}", minutes_ago=n)
    for _ in range(2):
        scheduled_run(api, flow, name=f"twin-{flow}")
    # When the shared prefix is resolved
    with pytest.raises(Conflict) as prefix_refusal:
        api.resolve_flow_run(shared)
    # Then the refusal lists five candidates (newest first), says there are more, and the fix
    message = prefix_refusal.value.message
    assert "more than 5" in message and "give more characters or the full id" in message
    candidates = prefix_refusal.value.details["candidates"]
    assert [c["id"] for c in candidates] == [f"{shared}{n:020d}" for n in range(5)]
    assert candidates[0]["short_id"] in message and flow in message
    # And a shared name is ambiguous the same way, with the exact count
    with pytest.raises(Conflict, match="matches 2 flow runs"):
        api.resolve_flow_run(f"twin-{flow}")


def test_a_reference_that_matches_nothing_says_how_to_list_runs(api, flow):
    with pytest.raises(NotFound) as refusal:
        api.resolve_flow_run(f"nosuch-{flow}")
    assert refusal.value.message.startswith(  # the client adds the HTTP status
        f"no flow run matches 'nosuch-{flow}'; `sluice flow-run ls` lists them")


def test_short_references_do_not_match_ids_by_a_few_characters(api, flow):
    # Given a run: three characters of its id are too few for a prefix, five for a suffix
    run = scheduled_run(api, flow, run_id="d" * 4 + uuid.uuid4().hex)
    with pytest.raises(NotFound):
        api.resolve_flow_run(run.id[:3])
    with pytest.raises(NotFound):
        api.resolve_flow_run(run.id[-5:])


def test_resolve_is_not_taken_for_a_run_id(server):
    # The static route wins over /flow-runs/{id}: "resolve" without a ref is a 422 naming ref
    with httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {OPERATOR}"}) as h:
        answer = h.get("/flow-runs/resolve")
    assert answer.status_code == 422 and "ref" in answer.text


# ---- delete a run ------------------------------------------------------------------------------

def test_deleting_a_finished_run_removes_its_history_task_runs_and_logs(api, server, flow):
    # Given a completed run with task runs and logs
    run = completed_run_with_records(api, flow)
    assert len(api.all_task_runs(run.id)) == 2 and len(api.read_logs(run.id).items) == 2
    # When it is deleted
    api.delete_flow_run(run.id)
    # Then the run, its history, task runs and logs are gone
    with pytest.raises(NotFound):
        api.get_flow_run(run.id)
    with pytest.raises(NotFound):
        api.flow_run_history(run.id)
    store, logs = server.ports.store, server.ports.logs
    assert store.list_task_runs(run.id, limit=10).items == []
    assert store.list_state_history(run.id) == []
    assert logs.read(run.id).items == []
    # And deleting it again is a 404
    with pytest.raises(NotFound):
        api.delete_flow_run(run.id)


@pytest.mark.parametrize("final", ["cancelled", "scheduled"])
def test_only_finished_runs_can_be_deleted(api, flow, final):
    # Given a scheduled run (and, in one case, cancelled)
    run = scheduled_run(api, flow)
    if final == "cancelled":
        api.cancel_flow_run(run.id)
        # When a cancelled run is deleted, Then it goes
        api.delete_flow_run(run.id)
        with pytest.raises(NotFound):
            api.get_flow_run(run.id)
        return
    # When a scheduled run is deleted, Then it is refused with the fix, and kept
    with pytest.raises(Conflict) as refusal:
        api.delete_flow_run(run.id)
    assert f"cancel it first (sluice flow-run cancel {run.id})" in refusal.value.message
    assert api.get_flow_run(run.id).state.type is StateType.SCHEDULED


# ---- pause and resume a pool -------------------------------------------------------------------

def test_a_paused_pools_runs_wait_and_start_after_resume(api, server, flow):
    # Given a pool with a deployment, one run already claimed and one waiting
    pool, deployment = pool_with_deployment(api, flow)
    running = api.run_deployment(deployment)
    assert claim(server, pool, running.id).status_code == 200
    waiting = api.run_deployment(deployment)
    # When the pool is paused
    paused = api.update_pool(pool, paused=True)
    assert paused.paused is True
    # Then a claim of the waiting run is refused, the run requeued and its message says why
    refused = claim(server, pool, waiting.id)
    assert refused.status_code == 429, refused.text
    assert refused.json()["details"]["reason"] == "pool_paused"
    assert refused.json()["details"]["requeued"] is True
    read = api.get_flow_run(waiting.id)
    assert read.state.type is StateType.SCHEDULED
    assert read.state.message == f"waiting: pool {pool} is paused (sluice pool resume {pool})"
    # And the message is written once, not at every refused claim
    version = server.ports.store.get_flow_run(waiting.id).version
    assert claim(server, pool, waiting.id, requeue=False).status_code == 429
    assert server.ports.store.get_flow_run(waiting.id).version == version
    # And the claimed run goes on (it is not Cancelled nor refused)
    assert api.get_flow_run(running.id).state.type is StateType.PENDING
    # When the pool is resumed, Then the waiting run can be claimed
    assert api.update_pool(pool, paused=False).paused is False
    assert claim(server, pool, waiting.id).status_code == 200


def test_creating_a_paused_pool_again_keeps_it_paused(api):
    pool = f"p-{uuid.uuid4().hex[:8]}"
    api.create_pool(PoolCreate(name=pool))
    api.update_pool(pool, paused=True)
    api.create_pool(PoolCreate(name=pool, description="changed"))
    assert api.get_pool(pool).paused is True


def test_a_pool_update_with_an_unknown_field_is_refused(server, api):
    pool = f"p-{uuid.uuid4().hex[:8]}"
    api.create_pool(PoolCreate(name=pool))
    with httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {OPERATOR}"}) as h:
        answer = h.patch(f"/pools/{pool}", json={"paused": True, "concurrency": 3})
    assert answer.status_code == 422 and "concurrency" in answer.text
    with pytest.raises(NotFound):
        api.update_pool(f"nosuch-{pool}", paused=True)


# ---- delete a pool -----------------------------------------------------------------------------

def test_a_pool_in_use_is_not_deleted_without_force(api, server, flow):
    # Given a pool with a deployment and a scheduled run
    pool, deployment = pool_with_deployment(api, flow)
    scheduled = api.run_deployment(deployment)
    # When it is deleted, Then it is refused naming the deployment, the run and the fix
    with pytest.raises(Conflict) as refusal:
        api.delete_pool(pool)
    message = refusal.value.message
    assert deployment in message and "1 run scheduled" in message and "--force" in message
    assert api.get_pool(pool).name == pool
    # When it is deleted with force, Then its scheduled run is cancelled and the pool is gone
    api.delete_pool(pool, force=True)
    assert api.get_flow_run(scheduled.id).state.type is StateType.CANCELLED
    with pytest.raises(NotFound):
        api.get_pool(pool)
    # And its queue is gone too (its dead-letter queue with it)
    with pytest.raises(NotFound):
        server.ports.queue.depth(pool)
    # And deleting it again is a 404
    with pytest.raises(NotFound):
        api.delete_pool(pool)


def test_a_pool_with_an_active_run_is_not_deleted_even_with_force(api, server, flow):
    pool, deployment = pool_with_deployment(api, flow)
    run = api.run_deployment(deployment)
    assert claim(server, pool, run.id).status_code == 200
    with pytest.raises(Conflict, match="1 run active"):
        api.delete_pool(pool, force=True)
    assert api.get_flow_run(run.id).state.type is StateType.PENDING
    assert api.get_pool(pool).name == pool


def test_an_unused_pool_is_deleted(api):
    pool = f"p-{uuid.uuid4().hex[:8]}"
    api.create_pool(PoolCreate(name=pool))
    api.delete_pool(pool)
    assert pool not in [p.name for p in api.list_pools()]


# ---- who may ----------------------------------------------------------------------------------

@pytest.mark.parametrize("method,path", [
    ("GET", "/flow-runs/resolve?ref=abcdef"),
    ("DELETE", "/flow-runs/0123456789abcdef"),
    ("PATCH", "/pools/{pool}"),
    ("DELETE", "/pools/{pool}"),
])
def test_workers_may_not_delete_runs_pause_or_delete_pools(server, api, method, path):
    pool = f"p-{uuid.uuid4().hex[:8]}"
    api.create_pool(PoolCreate(name=pool))
    token = tokens.pool_token(OPERATOR, pool)
    with httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {token}"}) as h:
        answer = h.request(method, path.format(pool=pool), json={"paused": True})
    assert answer.status_code == 403, answer.text
    assert api.get_pool(pool).paused is False


def test_the_openapi_document_builds_with_the_new_routes(server):
    with httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {OPERATOR}"}) as h:
        paths = h.get("/openapi.json").json()["paths"]
    assert {"get"} <= set(paths["/flow-runs/resolve"])
    assert {"get", "delete"} <= set(paths["/flow-runs/{flow_run_id}"])
    assert {"get", "patch", "delete"} <= set(paths["/pools/{name}"])



def test_no_worker_or_flow_process_grant_covers_an_operator_only_route():
    from sluice_functions import access

    for pool in ("etl", "default"):
        granted = access.worker_requests(pool) + access.flow_process_requests(pool)
        for method, path in access.operator_only_requests(pool):
            concrete = path.replace("*", "0123456789abcdef")
            assert not access.matches(granted, method, concrete), (method, concrete)
