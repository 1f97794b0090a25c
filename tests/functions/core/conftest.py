"""Fixtures for the orchestration and service tests: fresh in-memory ports and a fixed clock."""

from __future__ import annotations

from dataclasses import dataclass
import pytest

from core_fakes import (
    NOW,
    InMemoryLogSink,
    InMemoryRunQueue,
    InMemoryRunStore,
    RecordingMetrics,
)
from sluice.models import Deployment, DeploymentCreate, FlowRun, FlowRunCreate, PoolCreate
from sluice_functions import service

@dataclass
class Ports:
    store: InMemoryRunStore
    queue: InMemoryRunQueue
    logs: InMemoryLogSink
    metrics: RecordingMetrics

    def deployment(self, **fields) -> Deployment:
        """Upsert the deployment etl/nightly in pool "etl"."""
        request = DeploymentCreate(
            flow_name="etl", name="nightly", entrypoint="flows.py:etl", pool="etl", **fields
        )
        return service.create_deployment(request, store=self.store, queue=self.queue, now=NOW)

    def queued_run(self, *, deployment: dict | None = None, **run_fields) -> FlowRun:
        """A run of etl/nightly (the common start of a lifecycle test)."""
        dep = self.deployment(**(deployment or {}))
        request = FlowRunCreate(flow_name="etl", deployment_id=dep.id, **run_fields)
        return service.create_flow_run(
            request, store=self.store, queue=self.queue, metrics=self.metrics, now=NOW
        )


@pytest.fixture
def ports() -> Ports:
    clock = {"now": NOW}
    ports = Ports(
        store=InMemoryRunStore(),
        queue=InMemoryRunQueue(clock=lambda: clock["now"]),
        logs=InMemoryLogSink(),
        metrics=RecordingMetrics(),
    )
    service.create_pool(PoolCreate(name="etl"), store=ports.store, queue=ports.queue, now=NOW)
    return ports
