"""Automations from Python: small builders over `sluice.models.automations`.

    from sluice.automations import Automation, reactive, notify, run_deployment

    Automation(
        name="slack on failure",
        trigger=reactive("sluice.flow-run.Failed", "sluice.flow-run.Crashed",
                         related=["tag:critical"]),
        actions=[notify("slack", url_secret="slack-webhook")],
    ).create()
"""

from __future__ import annotations

from typing import Any

from .models.automations import (
    AutomationCreate,
    CancelRunAction,
    EventMatch,
    NotifyAction,
    PauseDeploymentAction,
    PausePoolAction,
    ProactiveTrigger,
    ReactiveTrigger,
    ResumeDeploymentAction,
    ResumePoolAction,
    ResumeRunAction,
    RunDeploymentAction,
    SuspendRunAction,
)

__all__ = ["Automation", "reactive", "proactive", "notify", "run_deployment", "cancel_run",
           "suspend_run", "resume_run",
           "pause_deployment", "resume_deployment", "pause_pool", "resume_pool", "match"]


class Automation(AutomationCreate):
    """An automation to create (`create()` sends it to the configured control plane)."""

    def create(self, *, profile: str | None = None, api_url: str | None = None) -> Any:
        """Create it; returns the stored `sluice.models.Automation` (with its id)."""
        from .client import get_client

        with get_client(profile=profile, api_url=api_url) as api:
            return api.create_automation(self)


def match(*names: str, resource_ids: list[str] | None = None,
          related: list[str] | None = None) -> EventMatch:
    """Events named any of `names` (`*` wildcards), about any of `resource_ids`, related to
    every one of `related` ("kind:id")."""
    return EventMatch(names=list(names), resource_ids=resource_ids or [], related=related or [])


def reactive(*names: str, resource_ids: list[str] | None = None,
             related: list[str] | None = None, threshold: int = 1,
             within_seconds: int | None = None, per_resource: bool = False) -> ReactiveTrigger:
    """Fire on matching events: each one, or `threshold` of them within `within_seconds`
    (counted per resource with `per_resource`)."""
    return ReactiveTrigger(match=match(*names, resource_ids=resource_ids, related=related),
                           threshold=threshold, within_seconds=within_seconds,
                           group_by="resource" if per_resource else None)


def proactive(expect: EventMatch, *, within_seconds: int | None = None,
              after: EventMatch | None = None, daily_at: str | None = None,
              timezone: str = "UTC", per_resource: bool = False) -> ProactiveTrigger:
    """Fire when `expect` does not happen: within `within_seconds` (of each `after` event, or
    of now), or by `daily_at` ("03:00") in `timezone` each day."""
    return ProactiveTrigger(expect=expect, after=after, within_seconds=within_seconds,
                            daily_at=daily_at, timezone=timezone,
                            group_by="resource" if per_resource else None)


def notify(via: str, *, url_secret: str | None = None, topic_arn: str | None = None,
           hmac_secret: str | None = None, subject: str | None = None,
           body: str | None = None) -> NotifyAction:
    """A notification via "webhook", "slack" or "sns" (templates: event, automation, now)."""
    texts = {k: v for k, v in (("subject", subject), ("body", body)) if v is not None}
    return NotifyAction(via=via, url_secret=url_secret, topic_arn=topic_arn,  # type: ignore[arg-type]
                        hmac_secret=hmac_secret, **texts)


def run_deployment(deployment: str, **parameters: Any) -> RunDeploymentAction:
    """Run `deployment` ("flow/name"); string parameters are templates over the event."""
    return RunDeploymentAction(deployment=deployment, parameters=parameters)


def cancel_run(run: str = "{{ event.resource.id }}") -> CancelRunAction:
    return CancelRunAction(run=run)


def suspend_run(run: str = "{{ event.resource.id }}", *,
                message: str | None = None) -> SuspendRunAction:
    """Suspend a run (default: the triggering event's run) until it is resumed."""
    return SuspendRunAction(run=run, message=message)


def resume_run(run: str = "{{ event.resource.id }}") -> ResumeRunAction:
    """Resume a Suspended run (default: the triggering event's run)."""
    return ResumeRunAction(run=run)


def pause_deployment(deployment: str) -> PauseDeploymentAction:
    return PauseDeploymentAction(deployment=deployment)


def resume_deployment(deployment: str) -> ResumeDeploymentAction:
    return ResumeDeploymentAction(deployment=deployment)


def pause_pool(pool: str) -> PausePoolAction:
    return PausePoolAction(pool=pool)


def resume_pool(pool: str) -> ResumePoolAction:
    return ResumePoolAction(pool=pool)
