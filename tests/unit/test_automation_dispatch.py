"""Automations off the request path: the dispatchers, the explicit event recorder, the on-event
cache, and the embedded server answering before a webhook (the automations Lambda:
`test_automations_lambda.py`)."""

from __future__ import annotations

import contextvars
import logging
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sluice.models import (
    AutomationCreate,
    ClaimRequest,
    DeploymentCreate,
    EventResource,
    SluiceEvent,
)
from sluice_functions import service
from sluice_functions.adapters.memory_metrics import InMemoryMetrics
from sluice_functions.adapters.sqlite import (
    SqliteEventStore,
    SqliteLogSink,
    SqliteRunQueue,
    SqliteRunStore,
)
from sluice_functions.automations import (
    InlineDispatcher,
    InMemoryAutomationStore,
    NoDispatch,
    ThreadDispatcher,
)
from sluice_functions.automations.manage import create_automation
from sluice_functions.automations.on_event import OnEventDeployments
from sluice_functions.ports import ControlPlanePorts
from sluice_functions.service.event_log import attach_recorder, recorder_of
from sluice_functions.service.pool_scope import PoolScopedStore

T0 = datetime(2026, 12, 4, 10, tzinfo=UTC)


def ping(ident: str, name: str = "test.ping") -> SluiceEvent:
    return SluiceEvent(name=name, occurred=T0, resource=EventResource(kind="test", id=ident))


class FakePorts:
    def __init__(self) -> None:
        self.metrics = InMemoryMetrics()


@pytest.fixture
def ports(tmp_path):
    built = ControlPlanePorts(
        store=SqliteRunStore(tmp_path / "store.db"),
        queue=SqliteRunQueue(tmp_path / "queue.db", url_base="http://local/queues/"),
        logs=SqliteLogSink(tmp_path / "logs.db"), metrics=InMemoryMetrics(),
        events=SqliteEventStore(tmp_path / "events.db"), automations=InMemoryAutomationStore())
    service.ensure_pool("default", store=built.store, queue=built.queue)
    yield built
    for adapter in (built.store, built.queue, built.logs, built.events):
        adapter.close()


# ---- the thread dispatcher ------------------------------------------------------------------


def test_the_thread_dispatcher_runs_batches_in_order_on_its_own_thread():
    # Given an engine that notes each batch and the thread it ran on
    seen: list[tuple[list[str], str]] = []
    engine = lambda events, ports, now: seen.append(  # noqa: E731
        ([e.resource.id for e in events], threading.current_thread().name))
    dispatcher = ThreadDispatcher(FakePorts(), engine=engine)
    # When three batches are submitted and drained
    for batch in (["a"], ["b", "c"], ["d"]):
        dispatcher.submit([ping(i) for i in batch])
    assert dispatcher.drain(timeout=10)
    dispatcher.close()
    # Then they ran in order, not on the caller's thread
    assert [ids for ids, _ in seen] == [["a"], ["b", "c"], ["d"]]
    assert {name for _, name in seen} == {"sluice-automations"}


def test_an_engine_error_is_counted_and_the_next_batch_still_runs(caplog):
    ports = FakePorts()
    seen: list[str] = []

    def engine(events, ports, now):
        if events[0].resource.id == "bad":
            raise RuntimeError("boom")
        seen.append(events[0].resource.id)

    dispatcher = ThreadDispatcher(ports, engine=engine)
    with caplog.at_level(logging.ERROR):
        dispatcher.submit([ping("bad")])
        dispatcher.submit([ping("good")])
        assert dispatcher.drain(timeout=10)
    dispatcher.close()
    assert seen == ["good"]
    assert ports.metrics.counter("AutomationErrors") == 1
    assert "automations failed" in caplog.text


def test_a_full_queue_drops_and_counts_instead_of_blocking_the_caller():
    # Given an engine held on its first batch and a queue of one batch
    ports, release, started = FakePorts(), threading.Event(), threading.Event()

    def engine(events, ports, now):
        started.set()
        release.wait(10)

    dispatcher = ThreadDispatcher(ports, engine=engine, max_batches=1)
    dispatcher.submit([ping("held")])
    assert started.wait(10)
    # When two more batches come: one fits, the other does not
    dispatcher.submit([ping("queued")])
    dispatcher.submit([ping("dropped-1"), ping("dropped-2")])
    # Then the caller was not blocked, and the dropped events are counted
    assert ports.metrics.counter("AutomationEventsDropped") == 2
    assert not dispatcher.drain(timeout=0.01)
    release.set()
    assert dispatcher.drain(timeout=10)
    dispatcher.close()


def test_close_handles_what_is_queued_and_refuses_later_batches():
    ports, seen = FakePorts(), []
    dispatcher = ThreadDispatcher(ports, engine=lambda events, ports, now: seen.append(
        events[0].resource.id))
    for ident in ("a", "b", "c"):
        dispatcher.submit([ping(ident)])
    dispatcher.close(timeout=10)
    dispatcher.submit([ping("late")])
    assert seen == ["a", "b", "c"]
    assert ports.metrics.counter("AutomationEventsDropped") == 1


def test_a_batch_runs_in_the_context_it_was_submitted_from():
    # The nesting guards of automations acting on automations' events are context variables.
    depth: contextvars.ContextVar[int] = contextvars.ContextVar("depth", default=0)
    seen: list[int] = []
    dispatcher = ThreadDispatcher(FakePorts(), engine=lambda events, ports, now: seen.append(
        depth.get()))
    token = depth.set(2)
    dispatcher.submit([ping("nested")])
    depth.reset(token)
    dispatcher.submit([ping("top")])
    assert dispatcher.drain(timeout=10)
    dispatcher.close()
    assert seen == [2, 0]


# ---- the recorder ---------------------------------------------------------------------------


class Collecting:
    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    def submit(self, events, *, now=None) -> None:
        self.batches.append([e.name for e in events])

    def drain(self, timeout=None) -> bool:
        return True

    def close(self, timeout=None) -> None:
        return None


def test_transitions_reach_the_dispatcher_attached_to_the_store_even_through_a_wrapper(ports):
    # Given a recorder attached to the store with a collecting dispatcher
    dispatcher = Collecting()
    attach_recorder(ports, dispatcher)
    assert recorder_of(PoolScopedStore(ports.store, "default")).dispatcher is dispatcher
    # When a run is created and claimed through a pool-scoped store (as worker routes do)
    deployment = service.create_deployment(DeploymentCreate(
        flow_name="etl", name="nightly", entrypoint="flows.py:etl"), store=ports.store,
        queue=ports.queue, now=T0)
    run = service.run_deployment(deployment.id, service_request(), store=ports.store,
                                 queue=ports.queue, metrics=ports.metrics, now=T0)
    service.claim_flow_run(run.id, ClaimRequest(worker="w1"),
                           store=PoolScopedStore(ports.store, "default"),
                           metrics=ports.metrics, now=T0)
    # Then each event was stored and handed to the dispatcher, the claim's included
    names = [name for batch in dispatcher.batches for name in batch]
    assert names == ["sluice.deployment.created", "sluice.flow-run.Scheduled",
                     "sluice.flow-run.Pending"]
    stored = ports.events.list_events(limit=10).items
    assert sorted(e.name for e in stored) == sorted(names)


def service_request():
    from sluice.models import DeploymentRunRequest

    return DeploymentRunRequest()


def test_a_store_without_a_recorder_records_nothing(ports):
    deployment = service.create_deployment(DeploymentCreate(
        flow_name="etl", name="nightly", entrypoint="flows.py:etl"), store=ports.store,
        queue=ports.queue, now=T0)
    assert deployment.id and ports.events.list_events(limit=10).items == []


def test_no_dispatch_stores_and_publishes_without_acting(ports):
    # Given an automation on test.ping and a recorder that dispatches nowhere (AWS functions)
    create_automation(pause_pool_automation("test.ping"), ports=ports, now=T0 - timedelta(days=1))
    attach_recorder(ports, NoDispatch())
    from sluice_functions.service.event_log import record

    record([ping("p1")], ports=ports, now=T0)
    assert [e.name for e in ports.events.list_events(limit=10).items] == ["test.ping"]
    assert ports.automations.receipts == {}


def pause_pool_automation(name: str) -> AutomationCreate:
    return AutomationCreate.model_validate({
        "name": f"on {name}", "trigger": {"type": "reactive", "match": {"names": [name]}},
        "actions": [{"type": "pause-pool", "pool": "default"}]})


# ---- the on-event cache ---------------------------------------------------------------------


class CountingStore:
    def __init__(self, store) -> None:
        self._store = store
        self.listed = 0

    def list_deployments(self, **kwargs):
        self.listed += 1
        return self._store.list_deployments(**kwargs)


def test_on_event_deployments_are_listed_once_per_ttl_and_again_after_a_change(ports):
    clock = [100.0]
    cache = OnEventDeployments(ttl_seconds=10, clock=lambda: clock[0])
    store = CountingStore(ports.store)
    assert cache.get(store) == [] and cache.get(store) == []
    assert store.listed == 1
    clock[0] += 11
    cache.get(store)
    assert store.listed == 2
    cache.invalidate()
    cache.get(store)
    assert store.listed == 3


def test_a_deployment_change_in_this_process_invalidates_the_recorder_cache(ports):
    # Given the recorder's cache filled while no deployment runs on events
    recorder = attach_recorder(ports, InlineDispatcher(ports))
    assert recorder.on_event_deployments.get(ports.store) == []
    # When an on-event deployment is created
    from sluice.models.deployments import OnEvent

    service.create_deployment(DeploymentCreate(
        flow_name="etl", name="on-ping", entrypoint="flows.py:etl",
        on_event=OnEvent(pattern={"detail-type": ["test.ping"]})), store=ports.store,
        queue=ports.queue, now=T0)
    # Then the next event sees it at once (its deployment event invalidated the list)
    assert [d.name for d in recorder.on_event_deployments.get(ports.store)] == ["on-ping"]


# ---- the embedded server --------------------------------------------------------------------


class HeldReceiver:
    """A webhook receiver that holds each POST until released."""

    def __init__(self) -> None:
        self.entered, self.release = threading.Event(), threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                self.rfile.read(int(self.headers.get("content-length", 0)))
                outer.entered.set()
                outer.release.wait(30)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def test_the_embedded_server_answers_before_the_webhook_and_the_action_completes(
        tmp_path, isolated_sluice_home):
    import httpx

    from sluice.secrets import LocalSecretStore
    from sluice_functions.embedded.server import EmbeddedServer

    receiver = HeldReceiver()
    LocalSecretStore(isolated_sluice_home / "secrets").set("held-hook", receiver.url)
    server = EmbeddedServer(data_dir=tmp_path / "data", port=0, token=None).start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as api:
            api.post("/automations", json={
                "name": "held", "trigger": {"type": "reactive",
                                            "match": {"names": ["test.ping"]}},
                "actions": [{"type": "notify", "via": "webhook",
                             "url_secret": "held-hook"}]}).raise_for_status()
            # When an event is posted while the webhook receiver holds every request
            api.post("/events", json={"events": [{
                "name": "test.ping", "resource": {"kind": "test", "id": "p1"}}]}
                     ).raise_for_status()
            # Then the API answered; the webhook is reached after (or while) it answered
            assert receiver.entered.wait(10)
            receiver.release.set()
            assert server.automation_dispatcher.drain(timeout=10)
            # and the action succeeded: it did not time out inside the request
            triggered = [e for e in server.ports.events.list_events(limit=50).items
                         if e.name == "sluice.automation.triggered"]
            assert [e.payload["actions"][0]["ok"] for e in triggered] == [True]
    finally:
        server.stop()
        receiver.close()
