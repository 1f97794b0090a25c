"""Automations: react to Sluice events (reactive triggers) or to their absence (proactive
triggers), with actions that run deployments, cancel runs, pause or resume deployments and
pools, and notify (webhook, Slack, SNS).

`on_events` is the engine an `AutomationDispatcher` (`dispatch.py`) runs on events that
`service.event_log.record` stored: on a background thread embedded, in the automations function
on AWS (`handlers/automations.py`, invoked by EventBridge), inline in unit tests. The monitor
tick calls `evaluate_proactive`. Each (automation, triggering event or window) acts once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .actions import ActionFailed, ActionRuntime, signature
from .engine import evaluate_proactive
from .engine import on_events as _react_to_events
from .memory import InMemoryAutomationStore
from .dispatch import AutomationDispatcher, InlineDispatcher, NoDispatch, ThreadDispatcher
from .ports import AutomationStore, automation_store



def on_events(events: Any, *, ports: Any, now: datetime | None = None, **options: Any) -> int:
    """Fire the reactive automations `events` trigger, then start the runs of deployments
    whose `on_event` pattern they match (embedded; on AWS EventBridge rules do that). Returns
    how many automations fired."""
    fired = _react_to_events(events, ports=ports, now=now, **options)
    from .on_event import on_recorded

    on_recorded(events, ports=ports, now=now)
    return fired


__all__ = ["on_events", "evaluate_proactive", "ActionRuntime", "ActionFailed", "signature",
           "AutomationStore", "InMemoryAutomationStore", "automation_store",
           "AutomationDispatcher", "InlineDispatcher", "ThreadDispatcher", "NoDispatch"]
