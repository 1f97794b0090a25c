"""Where every Sluice event goes: `record` stores it, publishes it (EventBridge on AWS) and hands
it to the automations, the one path for the control plane's own events and users' events alike.

Recording is best effort by design: the state change, deployment change or user request that
caused an event is already written when it is recorded, so a failure to store or publish it is
logged and counted (metrics `EventStoreErrors`, `EventPublishErrors`), never raised into the
transition, the claim or the request that caused it.

The use cases that apply transitions get the run store, not the ports; the composition roots'
ports bind themselves to their store (`ControlPlanePorts.__post_init__` -> `bind_ports`) so
`ports_of(store)` finds where that store's events go. A store without bound ports (a test
calling a use case with a bare fake store) records nothing.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sluice.models import FlowRun, SluiceEvent, utcnow

if TYPE_CHECKING:
    from ..ports import ControlPlanePorts

LOGGER = logging.getLogger(__name__)
#: Names starting with this are the control plane's own; user code may not emit them.
RESERVED_PREFIX = "sluice."

_ports_by_store: dict[int, ControlPlanePorts] = {}


def bind_ports(ports: ControlPlanePorts) -> None:
    """Make `ports_of(ports.store)` answer `ports` (called when ports are built)."""
    if ports.store is None:  # ports built for a schema or a route listing, never served
        return
    key = id(ports.store)
    _ports_by_store[key] = ports
    try:
        # Forget the ports with their store, so a later store reusing the address is not
        # mistaken for this one.
        weakref.finalize(ports.store, _ports_by_store.pop, key, None)
    except TypeError:  # a store that cannot be weakly referenced lives as long as the process
        pass


def ports_of(store: Any) -> ControlPlanePorts | None:
    """The ports built around `store`, looking through wrappers that keep the real store in
    `_store` (`PoolScopedStore`); None when nobody bound any."""
    seen = 0
    while store is not None and seen < 5:
        ports = _ports_by_store.get(id(store))
        if ports is not None and ports.store is store:
            return ports
        store = getattr(store, "__dict__", {}).get("_store")
        seen += 1
    return None


def record(events: Sequence[SluiceEvent], *, ports: ControlPlanePorts,
           now: datetime | None = None) -> None:
    """Store, publish and react to `events` (best effort, see the module docstring)."""
    if not events:
        return
    try:
        ports.events.append(events)
    except Exception:  # noqa: BLE001 - an event must never fail what caused it
        LOGGER.exception("could not store %d event(s) (%s ...)", len(events), events[0].name)
        ports.metrics.count("EventStoreErrors", len(events))
    try:
        ports.publisher.publish(events)
    except Exception:  # noqa: BLE001 - the same: publishing is best effort
        LOGGER.exception("could not publish %d event(s) (%s ...)", len(events), events[0].name)
        ports.metrics.count("EventPublishErrors", len(events))
    ports.metrics.count("EventsRecorded", len(events))
    try:
        from ..automations import on_events

        on_events(events, ports=ports, now=now or utcnow())
    except Exception:  # noqa: BLE001 - an automation's failure is its own, not the caller's
        LOGGER.exception("automations failed on %d event(s)", len(events))
        ports.metrics.count("AutomationErrors")


def record_for_store(events: Sequence[SluiceEvent], *, store: Any,
                     now: datetime | None = None) -> None:
    """`record` through the ports bound to `store` (nothing when none are)."""
    ports = ports_of(store)
    if ports is not None:
        record(events, ports=ports, now=now)


def flow_run_transitioned(before: FlowRun | None, run: FlowRun, *, store: Any,
                          now: datetime) -> None:
    """Record `sluice.flow-run.<StateName>` for a written transition (every transition of the
    control plane is applied by `lifecycle._apply`, which calls this once per write; a run's
    first state by `flow_runs.create_flow_run`, with `before` None). Costs
    nothing when the store has no bound ports; never raises."""
    ports = ports_of(store)
    if ports is None:
        return
    try:
        from .event_builders import deployment_name, flow_run_event

        event = flow_run_event(before, run, now=now,
                               deployment_name=deployment_name(store, run.deployment_id))
    except Exception:  # noqa: BLE001 - a malformed event is a bug here, not the run's problem
        LOGGER.exception("could not build the event of flow run %s", run.id)
        return
    record([event], ports=ports, now=now)
