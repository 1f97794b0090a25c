"""Fixtures for the schedule, monitor, concurrency and backfill tests: the real SQLite store and
queue on a temporary directory, in-memory metrics, and a clock the test moves by hand."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from sluice.models import (
    ClaimRequest,
    Deployment,
    DeploymentCreate,
    FlowRun,
    PoolCreate,
    SetStateRequest,
    State,
    StateType,
)
from sluice_functions import service
from sluice_functions.adapters.memory_metrics import InMemoryMetrics
from sluice_functions.adapters.sqlite import SqliteRunQueue, SqliteRunStore
from sluice_functions.ports import FlowRunFilter
from sluice_functions.orchestration import LeasePolicy

#: See `Plane.claim`.
SHORTEST_LEASES = LeasePolicy.of_seconds(1)

UTC = timezone.utc
T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


class Clock:
    """The injectable clock: tests move it; nothing sleeps."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


class RecordingQueue(SqliteRunQueue):
    """The SQLite queue, also remembering every send as (flow_run_id, attempt, delay_seconds)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.sent: list[tuple[str, int, int]] = []
        self._lock = threading.Lock()

    def send(self, pool: str, body: str, *, delay_seconds: int = 0) -> str:
        message_id = super().send(pool, body, delay_seconds=delay_seconds)
        message = json.loads(body)
        with self._lock:
            self.sent.append((message["flow_run_id"], message["attempt"], delay_seconds))
        return message_id

    def sends_of(self, run_id: str) -> list[tuple[int, int]]:
        """(attempt, delay) of every message sent for a run."""
        return [(attempt, delay) for rid, attempt, delay in self.sent if rid == run_id]


@dataclass
class Plane:
    """The control plane's ports plus helpers the tests share."""

    store: SqliteRunStore
    queue: RecordingQueue
    metrics: InMemoryMetrics
    clock: Clock
    closers: list[Any] = field(default_factory=list)

    @property
    def ports(self) -> dict[str, Any]:
        return {"store": self.store, "queue": self.queue, "metrics": self.metrics}

    def deploy(self, *, name: str = "nightly", **fields: Any) -> Deployment:
        """Create or update the deployment etl/<name> in pool "etl", at the clock's time."""
        fields.setdefault("pool", "etl")
        request = DeploymentCreate(flow_name="etl", name=name, entrypoint="flows.py:etl",
                                   **fields)
        return service.create_deployment(request, store=self.store, queue=self.queue,
                                         now=self.clock())

    def runs(self, deployment: Deployment | None = None, *states: StateType) -> list[FlowRun]:
        """Runs (of a deployment), oldest first, in any of `states` (all when none given)."""
        flt = FlowRunFilter(deployment_id=deployment.id if deployment else None,
                            state_types=frozenset(states) or None)
        items: list[FlowRun] = []
        cursor = None
        while True:
            page = self.store.list_flow_runs(flt, limit=200, cursor=cursor)
            items.extend(page.items)
            cursor = page.next_cursor
            if cursor is None:
                return sorted(items, key=lambda r: (r.scheduled_at, r.id))

    def claim(self, run_id: str, worker: str = "w1", attempt: int | None = None):
        # Leases as short as any monitor of these tests judges them: the heartbeat timeout
        # each test passes to the monitor decides (a lease granted on longer terms would hold).
        return service.claim_flow_run(run_id, ClaimRequest(worker=worker, attempt=attempt),
                                      store=self.store, metrics=self.metrics, now=self.clock(),
                                      leases=SHORTEST_LEASES)

    def report(self, run_id: str, state: State, lease: str, transition_id: str):
        request = SetStateRequest(state=state, transition_id=transition_id, lease=lease)
        return service.set_state(run_id, request, **self.ports, now=self.clock())


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def plane(tmp_path: Path, clock: Clock):
    store = SqliteRunStore(tmp_path / "store.db")
    queue = RecordingQueue(tmp_path / "queue.db")
    plane = Plane(store=store, queue=queue, metrics=InMemoryMetrics(), clock=clock)
    service.create_pool(PoolCreate(name="etl"), store=store, queue=queue, now=clock())
    yield plane
    store.close()
    queue.close()
