"""Evaluating triggers: reactive ones on each batch of recorded events, proactive ones on each
monitor tick. Every firing first claims a receipt (automation id, key) in the automation store;
only the caller that inserted it acts, so a redelivered event or a second tick acts never again.

Keys: `event:<event id>` (reactive, threshold 1), `count:<group>:<occurred>:<event id>`
(reactive threshold reached; the group counts afresh after it), `after:<event id>`,
`silence:<window number>` and `deadline:<UTC deadline>` (proactive).
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from sluice.models import (
    Automation,
    EventMatch,
    EventResource,
    ProactiveTrigger,
    ReactiveTrigger,
    SluiceEvent,
    utcnow,
)

from .actions import ActionFailed, ActionRuntime, execute
from .ports import automation_store, has_automations
from .windows import latest_deadline

LOGGER = logging.getLogger(__name__)
#: Events read back per page when counting a window.
_PAGE = 200
#: Pages read at most per count (a threshold is at most 1000 events).
_MAX_PAGES = 10
#: How far back a proactive `after` trigger looks for events whose window closed since the last
#: tick (the monitor may have been down); older ones are not evaluated.
AFTER_LOOKBACK = timedelta(hours=1)
#: Automations reacting to automations' own events nest; deeper than this is a loop.
MAX_NESTING = 3
_nesting: contextvars.ContextVar[int] = contextvars.ContextVar("automation_nesting", default=0)


def on_events(events: Sequence[SluiceEvent], *, ports: Any, now: datetime | None = None,
              runtime: ActionRuntime | None = None) -> int:
    """Fire the reactive automations these freshly recorded events trigger; returns how many
    firings acted. Never raises for one automation's failure (it is logged and recorded)."""
    if not events or ports is None or not has_automations(ports) \
            or _nesting.get() >= MAX_NESTING:
        return 0
    now = now or utcnow()
    automations = [a for a in automation_store(ports).list_automations()
                   if a.enabled and isinstance(a.trigger, ReactiveTrigger)]
    fired = 0
    for automation in automations:
        for event in events:
            if _about_itself(event, automation) or not automation.trigger.match.matches(event):
                continue
            if depth_of(event) >= MAX_NESTING:
                continue  # automations acting on automations' results, delivered by EventBridge
            try:
                fired += _react(automation, event, ports=ports, now=now, runtime=runtime)
            except Exception:  # noqa: BLE001 - one automation must not stop the others
                LOGGER.exception("automation %s failed on event %s", automation.id, event.id)
    return fired


def evaluate_proactive(*, ports: Any = None, store: Any = None, now: datetime | None = None,
                       runtime: ActionRuntime | None = None) -> int:
    """Fire the proactive automations whose expected event is missing (the monitor tick calls
    this); `store` finds the ports of the recorder attached to a run store
    (`service.event_log.attach_recorder`). Returns how many firings acted."""
    if ports is None and store is not None:
        ports = _ports_of(store)
    if ports is None or not has_automations(ports):
        return 0
    now = now or utcnow()
    fired = 0
    try:
        automations = automation_store(ports).list_automations()
    except Exception:  # noqa: BLE001 - the monitor tick goes on without automations
        LOGGER.exception("could not list automations for the proactive evaluation")
        return 0
    for automation in automations:
        if not automation.enabled or not isinstance(automation.trigger, ProactiveTrigger):
            continue
        try:
            fired += _evaluate(automation, ports=ports, now=now, runtime=runtime)
        except Exception:  # noqa: BLE001 - one automation must not stop the others
            LOGGER.exception("proactive automation %s failed", automation.id)
    return fired


def _ports_of(store: Any) -> Any:
    try:
        from ..service.event_log import ports_of
    except ImportError:
        return None
    return ports_of(store)


def depth_of(event: SluiceEvent) -> int:
    """How many automations acted in a row to produce `event`: 0 for any event but an
    automation's result, whose payload carries it (`depth`). Carried in the event so that the
    bound holds where events travel through EventBridge, not through one call stack."""
    if not event.name.startswith("sluice.automation."):
        return 0
    depth = event.payload.get("depth")
    return depth if isinstance(depth, int) and depth > 0 else 0


def _about_itself(event: SluiceEvent, automation: Automation) -> bool:
    return any(r.kind == "automation" and r.id == automation.id
               for r in [event.resource, *event.related])


# ---- reactive -------------------------------------------------------------------------------


def _react(automation: Automation, event: SluiceEvent, *, ports: Any, now: datetime,
           runtime: ActionRuntime | None) -> int:
    trigger: ReactiveTrigger = automation.trigger  # type: ignore[assignment]
    if trigger.threshold == 1:
        return _fire(automation, f"event:{event.id}", event, ports=ports, now=now,
                     runtime=runtime)
    group = _group_of(event) if trigger.group_by == "resource" else "*"
    store = automation_store(ports)
    start = event.occurred - timedelta(seconds=trigger.within_seconds or 0)
    last_fired = store.latest_receipt(automation.id, f"count:{group}:")
    counted = 0
    for seen in _matching(ports, trigger.match, since=start,
                          until=event.occurred + timedelta(microseconds=1),
                          resource_id=event.resource.id if group != "*" else None):
        if group != "*" and _group_of(seen) != group:
            continue
        if last_fired is not None and seen.occurred <= last_fired:
            continue  # counted toward the previous firing
        counted += 1
    if counted < trigger.threshold:
        return 0
    key = f"count:{group}:{event.occurred.isoformat()}:{event.id}"
    return _fire(automation, key, event, ports=ports, now=now, runtime=runtime,
                 claimed_at=event.occurred)


def _group_of(event: SluiceEvent) -> str:
    return f"{event.resource.kind}:{event.resource.id}"


def _matching(ports: Any, match: EventMatch, *, since: datetime, until: datetime,
              resource_id: str | None = None) -> Iterator[SluiceEvent]:
    """Stored events of [since, until) that `match`, oldest first."""
    cursor = None
    for _ in range(_MAX_PAGES):
        page = ports.events.list_events(since=since, until=until, names=match.name_prefixes(),
                                        resource_id=resource_id, limit=_PAGE, cursor=cursor)
        for event in page.items:
            if match.matches(event):
                yield event
        cursor = page.next_cursor
        if cursor is None:
            return


# ---- proactive ------------------------------------------------------------------------------


def _evaluate(automation: Automation, *, ports: Any, now: datetime,
              runtime: ActionRuntime | None) -> int:
    trigger: ProactiveTrigger = automation.trigger  # type: ignore[assignment]
    if trigger.daily_at is not None:
        deadline = latest_deadline(trigger.daily_at, trigger.timezone, now)
        if deadline < automation.created:
            return 0  # the automation did not exist for that day
        window_start = deadline - timedelta(days=1)
        if _any(ports, trigger.expect, since=window_start, until=deadline):
            return 0
        missing = _missing_event(automation, window_start, deadline, reason="deadline")
        return _fire(automation, f"deadline:{deadline.isoformat()}", missing, ports=ports,
                     now=now, runtime=runtime)
    window = timedelta(seconds=trigger.within_seconds or 0)
    if trigger.after is None:
        if now - automation.created < window:
            return 0
        if _any(ports, trigger.expect, since=now - window, until=now):
            return 0
        number = int((now - automation.created) / window)
        missing = _missing_event(automation, now - window, now, reason="silence")
        return _fire(automation, f"silence:{number}", missing, ports=ports, now=now,
                     runtime=runtime)
    fired = 0
    oldest = max(now - window - AFTER_LOOKBACK, automation.created)
    for started in _matching(ports, trigger.after, since=oldest, until=now - window):
        resource = started.resource.id if trigger.group_by == "resource" else None
        if _any(ports, trigger.expect, since=started.occurred, until=started.occurred + window,
                resource_id=resource, strictly_after=started):
            continue
        fired += _fire(automation, f"after:{started.id}", started, ports=ports, now=now,
                       runtime=runtime)
    return fired


def _any(ports: Any, match: EventMatch, *, since: datetime, until: datetime,
         resource_id: str | None = None, strictly_after: SluiceEvent | None = None) -> bool:
    for event in _matching(ports, match, since=since, until=until, resource_id=resource_id):
        if strictly_after is not None and event.id == strictly_after.id:
            continue
        if resource_id is not None and event.resource.id != resource_id:
            continue
        return True
    return False


def _missing_event(automation: Automation, start: datetime, end: datetime, *,
                   reason: str) -> SluiceEvent:
    """What templates see as `event` when nothing happened: the absence itself."""
    return SluiceEvent(
        name="sluice.automation.expected-missing", occurred=end,
        resource=EventResource(kind="automation", id=automation.id, name=automation.name[:200]),
        payload={"reason": reason, "window_start": start.isoformat(),
                 "window_end": end.isoformat(),
                 "expected": automation.trigger.expect.model_dump()})  # type: ignore[union-attr]


# ---- acting ---------------------------------------------------------------------------------


def _fire(automation: Automation, key: str, event: SluiceEvent, *, ports: Any, now: datetime,
          runtime: ActionRuntime | None, claimed_at: datetime | None = None) -> int:
    if not automation_store(ports).claim_receipt(automation.id, key, at=claimed_at or now):
        return 0
    runtime = runtime or ActionRuntime()
    context = {"event": event.model_dump(mode="json"),
               "automation": {"id": automation.id, "name": automation.name},
               "now": now.isoformat()}
    outcomes: list[dict[str, Any]] = []
    results: list[SluiceEvent] = []
    for index, action in enumerate(automation.actions):
        try:
            done = execute(action, automation=automation, context=context, ports=ports,
                           runtime=runtime, key=key, now=now)
            outcomes.append({"action": index, "type": action.type, "ok": True, "result": done})
        except ActionFailed as exc:
            outcomes.append({"action": index, "type": action.type, "ok": False,
                             "error": str(exc)})
            results.append(_result_event("sluice.automation.action-failed", automation, event,
                                         now, {"key": key, "action": index,
                                               "type": action.type, "error": str(exc)[:2000]}))
            ports.metrics.count("AutomationActionsFailed")
    results.insert(0, _result_event("sluice.automation.triggered", automation, event, now,
                                    {"key": key, "actions": outcomes}))
    depth = max(_nesting.get(), depth_of(event)) + 1
    for result in results:
        result.payload["depth"] = depth
    ports.metrics.count("AutomationsTriggered")
    _record(results, ports=ports, now=now)
    return 1


def _result_event(name: str, automation: Automation, cause: SluiceEvent, now: datetime,
                  payload: dict[str, Any]) -> SluiceEvent:
    related = [EventResource(kind="event", id=cause.id, name=cause.name[:200])]
    if cause.resource.kind != "automation":
        related.append(cause.resource)
    return SluiceEvent(name=name, occurred=now,
                       resource=EventResource(kind="automation", id=automation.id,
                                              name=automation.name[:200]),
                       related=related, payload=payload)


def _record(events: list[SluiceEvent], *, ports: Any, now: datetime) -> None:
    try:
        from ..service.event_log import record
    except ImportError:  # before events land: nothing to record to
        return
    token = _nesting.set(_nesting.get() + 1)
    try:
        record(events, ports=ports, now=now)
    finally:
        _nesting.reset(token)
