"""The control plane's own events, built from what changed (names and schema in docs/events.md).

Ids are derived from what they describe (a run's version, a deployment's change time) where
that is possible, so a retried write records the same event once (stores are idempotent by id).
"""

from __future__ import annotations

import functools
import hashlib
from datetime import datetime
from typing import Any

from sluice.exceptions import NotFound
from sluice.models import Deployment, EventResource, FlowRun, SluiceEvent

from .store_layers import root_store

#: `sluice.flow-run.<state name>`: one event per state a run enters.
FLOW_RUN_PREFIX = "sluice.flow-run."
WORKER_OFFLINE = "sluice.worker.offline"
POOL_DEAD_LETTER = "sluice.pool.dead-letter"


def flow_run_event(before: FlowRun | None, run: FlowRun, *, now: datetime,
                   deployment_name: str | None = None) -> SluiceEvent:
    """`sluice.flow-run.<StateName>` for `run` having entered its current state from `before`."""
    state = run.state
    payload: dict[str, Any] = {
        "state_type": state.type.value,
        "state_name": state.name,
        "message": state.message,
        "attempt": run.run_count,
        "scheduled_at": _iso(run.scheduled_at),
        "previous_state_name": before.state.name if before is not None else None,
    }
    if state.is_terminal:
        payload["duration_seconds"] = run.duration_seconds
    related = [EventResource(kind="flow", id=run.flow_name)]
    if run.deployment_id:
        related.append(EventResource(kind="deployment", id=run.deployment_id,
                                     name=deployment_name))
    if run.pool:
        related.append(EventResource(kind="pool", id=run.pool))
    if run.worker:
        related.append(EventResource(kind="worker", id=run.worker))
    # The related list is bounded: tags beyond it are left out (the run still lists them all).
    room = 20 - len(related)
    related.extend(EventResource(kind="tag", id=tag) for tag in run.tags[:room])
    return SluiceEvent(
        id=f"{run.id}-v{run.version}",
        name=f"{FLOW_RUN_PREFIX}{state.name or state.type.value.title()}",
        occurred=state.timestamp or now,
        resource=EventResource(kind="flow-run", id=run.id, name=run.name),
        related=related,
        payload=payload,
    )


def deployment_event(action: str, deployment: Deployment, *, now: datetime,
                     payload: dict[str, Any] | None = None) -> SluiceEvent:
    """`sluice.deployment.<action>` (created, updated, deleted, paused, resumed)."""
    related = [EventResource(kind="flow", id=deployment.flow_name)]
    if deployment.pool:
        related.append(EventResource(kind="pool", id=deployment.pool))
    return SluiceEvent(
        name=f"sluice.deployment.{action}", occurred=now,
        resource=EventResource(kind="deployment", id=deployment.id,
                               name=f"{deployment.flow_name}/{deployment.name}"),
        related=related, payload=payload or {},
    )


def pool_event(action: str, pool: str, *, now: datetime,
               payload: dict[str, Any] | None = None) -> SluiceEvent:
    """`sluice.pool.<action>` (created, paused, resumed, deleted)."""
    return SluiceEvent(name=f"sluice.pool.{action}", occurred=now,
                       resource=EventResource(kind="pool", id=pool, name=pool),
                       payload=payload or {})


def worker_offline_event(pool: str, worker: str, last_seen: datetime, *,
                         now: datetime) -> SluiceEvent:
    """`sluice.worker.offline`; its id is the offline spell's (worker, last seen), so the
    monitor's ticks during one spell record it once."""
    spell = hashlib.sha256(f"{pool}\0{worker}\0{last_seen.isoformat()}".encode()).hexdigest()
    return SluiceEvent(
        id=f"worker-offline-{spell[:40]}", name=WORKER_OFFLINE, occurred=now,
        resource=EventResource(kind="worker", id=worker, name=worker),
        related=[EventResource(kind="pool", id=pool)],
        payload={"last_seen": _iso(last_seen)},
    )


def dead_letter_event(pool: str, depth: int, previous: int, *, now: datetime) -> SluiceEvent:
    """`sluice.pool.dead-letter`: the pool's dead-letter queue grew from `previous` to `depth`."""
    return SluiceEvent(name=POOL_DEAD_LETTER, occurred=now,
                       resource=EventResource(kind="pool", id=pool, name=pool),
                       payload={"depth": depth, "previous_depth": previous})


@functools.lru_cache(maxsize=512)
def _cached_deployment_name(store_key: int, deployment_id: str, store: Any) -> str | None:
    try:
        deployment = store.get_deployment(deployment_id)
    except NotFound:
        return None
    return f"{deployment.flow_name}/{deployment.name}"


def deployment_name(store: Any, deployment_id: str | None) -> str | None:
    """"flow/name" of a run's deployment, read once per process (a deployment's id keeps its
    name pair for life), None when it is gone."""
    if deployment_id is None:
        return None
    try:
        return _cached_deployment_name(id(root_store(store)), deployment_id, _Unhashed(store))
    except Exception:  # noqa: BLE001 - a name is a nicety; never fail the event for it
        return None


class _Unhashed:
    """Passes the store through `lru_cache` keyed only by the other arguments."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def __hash__(self) -> int:
        return 0

    def __eq__(self, other: object) -> bool:
        return True

    def get_deployment(self, deployment_id: str) -> Any:
        return self.store.get_deployment(deployment_id)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
