"""Where every Sluice event goes: `record` stores it, publishes it (EventBridge on AWS) and hands
it to the automations' dispatcher, the one path for the control plane's own events and users'
events alike. The automations never run here: the injected `AutomationDispatcher` runs them
on a background thread (embedded), in the automations function through EventBridge (AWS), or
inline (unit tests); a webhook that takes seconds never slows the request or the claim.

Recording is best effort by design: the state change, deployment change or user request that
caused an event is already written when it is recorded, so a failure to store or publish it is
logged and counted (metrics `EventStoreErrors`, `EventPublishErrors`), never raised into the
transition, the claim or the request that caused it.

The use cases that apply transitions get the run store, not the ports. So each composition
root (the embedded server, the Lambda handlers, test helpers) builds one `EventRecorder` for
its ports and attaches it to their run store, explicitly, with `attach_recorder`: the store's
`event_recorder` attribute is where `flow_run_transitioned(before, run, store=store)` finds
where events go. A store without one (a test calling a use case with a bare fake store)
records nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sluice.models import FlowRun, SluiceEvent, State

from .store_layers import store_layers

if TYPE_CHECKING:
    from ..automations.dispatch import AutomationDispatcher
    from ..ports import ControlPlanePorts

LOGGER = logging.getLogger(__name__)
#: Names starting with this are the control plane's own; user code may not emit them.
RESERVED_PREFIX = "sluice."
#: Every deployment change (created, updated, paused, resumed, deleted) records one of these.
DEPLOYMENT_EVENTS = "sluice.deployment."
#: The run store attribute a composition root sets (`attach_recorder`).
RECORDER_ATTRIBUTE = "event_recorder"


class EventRecorder:
    """The event ports of one control plane (`ports.events`, `ports.publisher`,
    `ports.metrics`) and its automation dispatcher. `ports` are also what use cases holding
    only the store need beside it (deployments' on-event rules and owned automations, the
    monitor's event checks and proactive automations)."""

    def __init__(self, ports: ControlPlanePorts, dispatcher: AutomationDispatcher) -> None:
        from ..automations.on_event import OnEventDeployments

        self.ports = ports
        self.dispatcher = dispatcher
        #: The deployments embedded on-event matching checks every event against, cached;
        #: this recorder's `sluice.deployment.*` events invalidate it.
        self.on_event_deployments = OnEventDeployments()
        #: Each pool's dead-letter depth at this process's previous monitor tick: an event is
        #: recorded when it grows (a fresh process only learns the depth at its first tick).
        self.dead_letter_depths: dict[str, int] = {}

    def record(self, events: Sequence[SluiceEvent], *, now: datetime | None = None) -> None:
        """Store, publish and dispatch `events` (best effort, see the module docstring);
        `now` is the clock of the automations that act on them (the caller's, in tests)."""
        if not events:
            return
        if any(event.name.startswith(DEPLOYMENT_EVENTS) for event in events):
            self.on_event_deployments.invalidate()
        ports = self.ports
        try:
            ports.events.append(events)
        except Exception:  # noqa: BLE001 - an event must never fail what caused it
            LOGGER.exception("could not store %d event(s) (%s ...)", len(events), events[0].name)
            ports.metrics.count("EventStoreErrors", len(events))
        try:
            ports.publisher.publish(events)
        except Exception:  # noqa: BLE001 - the same: publishing is best effort
            LOGGER.exception("could not publish %d event(s) (%s ...)", len(events),
                             events[0].name)
            ports.metrics.count("EventPublishErrors", len(events))
        ports.metrics.count("EventsRecorded", len(events))
        try:
            self.dispatcher.submit(events, now=now)
        except Exception:  # noqa: BLE001 - a dispatcher's failure is its own, not the caller's
            LOGGER.exception("could not hand %d event(s) to the automations", len(events))
            ports.metrics.count("AutomationErrors")


def attach_recorder(ports: ControlPlanePorts, dispatcher: AutomationDispatcher
                    ) -> EventRecorder:
    """Make `ports.store` record its events through `ports` and `dispatcher` (composition
    roots call this once, with their final ports); returns the recorder."""
    recorder = EventRecorder(ports, dispatcher)
    setattr(ports.store, RECORDER_ATTRIBUTE, recorder)
    return recorder


def recorder_of(store: Any) -> EventRecorder | None:
    """The recorder attached to `store` or to a store it wraps (`store_layers`); None when
    nobody attached one."""
    for layer in store_layers(store):
        recorder = getattr(layer, "__dict__", {}).get(RECORDER_ATTRIBUTE)
        if recorder is not None:
            return recorder
    return None


def ports_of(store: Any) -> ControlPlanePorts | None:
    """The ports of the recorder attached to `store` (None without one)."""
    recorder = recorder_of(store)
    return recorder.ports if recorder is not None else None


def record(events: Sequence[SluiceEvent], *, ports: ControlPlanePorts,
           now: datetime | None = None) -> None:
    """Store, publish and dispatch `events` through the recorder attached to `ports.store`;
    without one they are stored and published but reach no automation."""
    if not events:
        return
    recorder = recorder_of(ports.store)
    if recorder is None:
        from ..automations.dispatch import NoDispatch

        recorder = EventRecorder(ports, NoDispatch())
    recorder.record(events, now=now)


def record_for_store(events: Sequence[SluiceEvent], *, store: Any,
                     now: datetime | None = None) -> None:
    """`record` through the recorder attached to `store` (nothing when none is)."""
    recorder = recorder_of(store)
    if recorder is not None:
        recorder.record(events, now=now)


def flow_run_transitioned(before: FlowRun | None, run: FlowRun, *, store: Any,
                          now: datetime, passed: Sequence[State] = ()) -> None:
    """Record `sluice.flow-run.<StateName>` for a written transition (every transition of the
    control plane is applied by `lifecycle.apply_transition`, which calls this once per write;
    a run's first state by `flow_runs.create_flow_run`, with `before` None). A write that `passed`
    through states on the way (a claim that starts the run) records one event per state, in
    order. Costs nothing when the store has no recorder; never raises."""
    recorder = recorder_of(store)
    if recorder is None:
        return
    try:
        from .event_builders import deployment_name, flow_run_event

        name = deployment_name(store, run.deployment_id)
        steps = [run.model_copy(update={"state": state, "version": run.version - len(passed) + i})
                 for i, state in enumerate(passed)] + [run]
        events = []
        for step in steps:
            events.append(flow_run_event(before, step, now=now, deployment_name=name))
            before = step
    except Exception:  # noqa: BLE001 - a malformed event is a bug here, not the run's problem
        LOGGER.exception("could not build the event of flow run %s", run.id)
        return
    recorder.record(events, now=now)
