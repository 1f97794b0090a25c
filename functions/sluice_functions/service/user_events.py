"""Use cases of `GET /events` and `POST /events`: read the event log, and take events emitted
by users (the CLI, the API) and by flow processes (`sluice.emit_event`)."""

from __future__ import annotations

from datetime import datetime

from sluice.exceptions import PayloadTooLarge, ValidationError
from sluice.models import (
    MAX_EVENT_BYTES,
    EmitEventsRequest,
    EventResource,
    EventsEmitted,
    Page,
    SluiceEvent,
    new_id,
)

from ..ports import ControlPlanePorts
from .event_log import RESERVED_PREFIX, record
from .limits import check_page_limit

#: Name prefixes one `GET /events` filters on at most.
MAX_NAME_FILTERS = 10


def list_events(*, ports: ControlPlanePorts, since: datetime | None = None,
                until: datetime | None = None, names: list[str] | None = None,
                resource_id: str | None = None, limit: int = 100,
                cursor: str | None = None) -> Page[SluiceEvent]:
    """Events in [since, until) whose name starts with one of `names`, about `resource_id`:
    oldest first with `since` (to tail), newest first without."""
    check_page_limit(limit)
    if names and len(names) > MAX_NAME_FILTERS:
        raise ValidationError(f"at most {MAX_NAME_FILTERS} name prefixes per request, got "
                              f"{len(names)}; ask with fewer (or a shorter common prefix)")
    if since is not None and until is not None and until <= since:
        raise ValidationError("until must be after since; swap them or widen the window")
    return ports.events.list_events(since=since, until=until, names=names or None,
                                    resource_id=resource_id, limit=limit, cursor=cursor)


def emit_events(request: EmitEventsRequest, *, ports: ControlPlanePorts, now: datetime,
                operator: bool, pool: str | None = None) -> EventsEmitted:
    """Record user events. Names under `sluice.` are the control plane's: only an operator may
    emit one (to try an automation). A pool's caller (a flow process, `pool` set) must name the
    resource (its run) and its events relate to its pool. Raises `ValidationError` (422),
    `PayloadTooLarge` (an event over `MAX_EVENT_BYTES`), `NotFound` (a run not of the pool)."""
    events: list[SluiceEvent] = []
    for index, draft in enumerate(request.events):
        if draft.name.startswith(RESERVED_PREFIX) and not operator:
            raise ValidationError(
                f"events[{index}]: names starting with '{RESERVED_PREFIX}' are the control "
                f"plane's own; name yours differently (e.g. 'myteam.{draft.name[7:]}')",
                details={"index": index, "name": draft.name})
        if draft.resource is None:
            raise ValidationError(
                f"events[{index}]: say what the event is about in 'resource' "
                "({\"kind\": ..., \"id\": ...}); inside a flow run sluice.emit_event fills in "
                "the run", details={"index": index})
        related = list(draft.related)
        if pool is not None:
            _check_reachable(draft.resource, pool=pool, ports=ports)
            if not any(r.kind == "pool" and r.id == pool for r in related):
                related.append(EventResource(kind="pool", id=pool))
        try:
            event = SluiceEvent(id=draft.id or new_id(), name=draft.name,
                                occurred=draft.occurred or now, resource=draft.resource,
                                related=related, payload=draft.payload)
        except ValueError as error:  # pydantic: too many related resources with the pool
            raise ValidationError(f"events[{index}]: {error}") from None
        size = len(event.model_dump_json().encode())
        if size > MAX_EVENT_BYTES:
            raise PayloadTooLarge(
                f"events[{index}] is {size} bytes as JSON; at most {MAX_EVENT_BYTES}: keep "
                "large data elsewhere (S3) and put its key in the payload",
                details={"index": index, "bytes": size})
        events.append(event)
    record(events, ports=ports, now=now)
    return EventsEmitted(accepted=len(events))


def _check_reachable(resource: EventResource, *, pool: str, ports: ControlPlanePorts) -> None:
    """A pool's caller emits about the runs of its pool only (404 for another pool's run)."""
    if resource.kind == "flow-run":
        from .pool_scope import PoolScopedStore

        PoolScopedStore(ports.store, pool).get_flow_run(resource.id)
