"""Fixtures of the API tests: the app built on the SQLite adapters (real), with every port
wrapped so that tests can tell exactly which writes a request made."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sluice_functions.adapters.memory_metrics import InMemoryMetrics
from sluice_functions.adapters.sqlite import SqliteLogSink, SqliteRunQueue, SqliteRunStore
from sluice_functions.api import build_app
from sluice_functions.automations import InlineDispatcher, InMemoryAutomationStore
from sluice_functions.ports import ControlPlanePorts
from sluice_functions.service.event_log import attach_recorder

from .events import Answer, LambdaContext, http_event, read_answer

#: The API tests' "now" (the app's clock; advance it with `Api.clock.advance`).
NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)

#: Methods of each port that change what is stored. The recorder logs a call only when it
#: returned: by the ports' contract a write that raised wrote nothing.
STORE_WRITES = frozenset({
    "create_flow_run", "update_flow_run", "set_flow_run_state", "upsert_task_runs",
    "upsert_deployment", "update_deployment", "delete_deployment", "upsert_pool", "upsert_worker",
    "put_worker_session",
})
QUEUE_WRITES = frozenset({"create_pool_queue", "send", "receive", "change_visibility", "delete"})
LOG_WRITES = frozenset({"append"})


class WriteRecorder:
    """Wraps an adapter and appends the name of every write method that completed to `log`."""

    def __init__(self, adapter: Any, write_methods: frozenset[str], log: list[str]) -> None:
        self.adapter = adapter
        self._write_methods = write_methods
        self._log = log

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.adapter, name)
        if name not in self._write_methods:
            return attribute

        def recorded(*args: Any, **kwargs: Any) -> Any:
            result = attribute(*args, **kwargs)
            self._log.append(name)
            return result

        return recorded


@dataclass
class Clock:
    now: datetime = NOW

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Api:
    """The app under test, its ports (recorded), and shortcuts to call it."""

    app: Any
    ports: ControlPlanePorts
    metrics: InMemoryMetrics
    clock: Clock
    writes: list[str] = field(default_factory=list)

    def call(self, method: str, path: str, **event: Any) -> Answer:
        return read_answer(self.app.resolve(http_event(method, path, **event), LambdaContext()))

    def get(self, path: str, **event: Any) -> Answer:
        return self.call("GET", path, **event)

    def post(self, path: str, body: Any = None, **event: Any) -> Answer:
        return self.call("POST", path, body=body, **event)

    def patch(self, path: str, body: Any = None, **event: Any) -> Answer:
        return self.call("PATCH", path, body=body, **event)

    def delete(self, path: str, **event: Any) -> Answer:
        return self.call("DELETE", path, **event)

    # ---- Given ... -----------------------------------------------------------------------------

    def deployment(self, **fields: Any) -> dict[str, Any]:
        """The deployment etl/nightly in pool "etl" (created through the API)."""
        body = {"flow_name": "etl", "name": "nightly", "entrypoint": "flows.py:etl",
                "pool": "etl", **fields}
        answer = self.post("/deployments", body)
        assert answer.status == 200, answer.json
        return answer.json

    def queued_run(self, **fields: Any) -> dict[str, Any]:
        """A Scheduled run of etl/nightly, due now."""
        deployment = self.deployment()
        answer = self.post(f"/deployments/{deployment['id']}/runs", fields or None)
        assert answer.status == 201, answer.json
        return answer.json

    def claimed_run(self, worker: str = "w1") -> tuple[str, str]:
        """A run claimed by `worker` (Pending): its id and lease."""
        run = self.queued_run()
        answer = self.post(f"/flow-runs/{run['id']}/claim", {"worker": worker})
        assert answer.status == 200, answer.json
        return run["id"], answer.json["lease"]

    def running_run(self) -> tuple[str, str]:
        """A run its worker moved to Running: its id and lease."""
        run_id, lease = self.claimed_run()
        answer = self.post(f"/flow-runs/{run_id}/state", state_body("RUNNING", lease=lease))
        assert answer.json["status"] == "ACCEPT", answer.json
        return run_id, lease


def state_body(state_type: str, *, lease: str | None = None, transition_id: str | None = None,
               **state: Any) -> dict[str, Any]:
    """A `SetStateRequest` body."""
    body: dict[str, Any] = {
        "state": {"type": state_type, "timestamp": NOW.isoformat(), **state},
        "transition_id": transition_id or uuid.uuid4().hex,
    }
    if lease is not None:
        body["lease"] = lease
    return body


def sqlite_ports(data_dir: Path, writes: list[str], metrics: InMemoryMetrics) -> ControlPlanePorts:
    ports = ControlPlanePorts(
        store=WriteRecorder(SqliteRunStore(data_dir / "store.db"), STORE_WRITES, writes),
        queue=WriteRecorder(SqliteRunQueue(data_dir / "queue.db"), QUEUE_WRITES, writes),
        logs=WriteRecorder(SqliteLogSink(data_dir / "logs.db"), LOG_WRITES, writes),
        metrics=metrics,
        automations=InMemoryAutomationStore(),
    )
    # Events reach automations inline, before the request returns (the server uses a thread).
    attach_recorder(ports, InlineDispatcher(ports))
    return ports


def close_ports(ports: ControlPlanePorts) -> None:
    for recorder in (ports.store, ports.queue, ports.logs):
        recorder.adapter.close()


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    writes: list[str] = []
    metrics = InMemoryMetrics()
    clock = Clock()
    ports = sqlite_ports(tmp_path, writes, metrics)
    yield Api(app=build_app(ports, clock=clock), ports=ports, metrics=metrics, clock=clock,
              writes=writes)
    close_ports(ports)
