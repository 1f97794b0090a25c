"""`sluice.emit_event`: user code says something happened; automations and EventBridge rules
(on AWS) react to it like to the control plane's own events."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from .models import EventDraft, EventResource, new_id, utcnow

LOGGER = logging.getLogger(__name__)

ResourceLike = EventResource | Mapping[str, Any]


def emit_event(name: str, resource: ResourceLike | None = None,
               related: Sequence[ResourceLike] | None = None,
               payload: Mapping[str, Any] | None = None) -> EventDraft:
    """Record the event `name` (any name not starting with `sluice.`, e.g. "etl.file-loaded").

    Inside a flow run, `resource` defaults to the run and the event goes through the run's
    control plane (a run of a worker reaches it through its pool's route, about its own run);
    outside one, through the configured profile's client, and `resource` is required
    (`{"kind": "dataset", "id": "s3://bucket/key"}`). A run with no control plane configured
    (runs tracked in memory) keeps nothing. Returns the event as sent (its `id` included).
    """
    from .engine.context import flow_run_ctx

    context = flow_run_ctx.get()
    run_resource = None
    if context is not None:
        run = context.flow_run
        run_resource = EventResource(kind="flow-run", id=run.id, name=run.name)
    draft = EventDraft(
        id=new_id(), name=name, occurred=utcnow(),
        resource=_resource(resource) if resource is not None else run_resource,
        related=[_resource(r) for r in related or ()] + (
            [run_resource] if run_resource is not None and resource is not None else []),
        payload=dict(payload or {}),
    )
    if draft.resource is None:
        from .exceptions import ValidationError

        raise ValidationError(f"emit_event({name!r}): outside a flow run, say what the event "
                              "is about: resource={'kind': ..., 'id': ...}")
    client = _client_of_run(context) if context is not None else None
    if client is None and context is not None:
        LOGGER.debug("no control plane for this run: event %s kept nowhere", name)
        return draft
    if client is None:
        from .client import get_client

        with get_client() as own:
            own.emit_events([draft])
        return draft
    client.emit_events([draft])
    return draft


def _client_of_run(context: Any) -> Any:
    """The client the run reports through (None for runs tracked in memory)."""
    return getattr(context.reporter, "client", None)


def _resource(value: ResourceLike) -> EventResource:
    return value if isinstance(value, EventResource) else EventResource.model_validate(value)
