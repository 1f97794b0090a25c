"""Automations: react to Sluice events (reactive triggers) or to their absence (proactive
triggers), with actions that run deployments, cancel runs, pause or resume deployments and
pools, and notify (webhook, Slack, SNS).

`on_events` is called by `service.event_log.record` after events are stored; the monitor tick
calls `evaluate_proactive`. Each (automation, triggering event or window) acts once.
"""

from __future__ import annotations

from .actions import ActionFailed, ActionRuntime, signature
from .engine import evaluate_proactive, on_events
from .memory import InMemoryAutomationStore
from .ports import AutomationStore, automation_store

__all__ = ["on_events", "evaluate_proactive", "ActionRuntime", "ActionFailed", "signature",
           "AutomationStore", "InMemoryAutomationStore", "automation_store"]
