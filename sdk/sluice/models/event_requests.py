"""Request and answer bodies of `POST /events` (see `sluice_events` for the event itself)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .sluice_events import MAX_RELATED_RESOURCES, EventResource

#: Events one `POST /events` takes.
MAX_EVENTS_PER_EMIT = 100


class EventDraft(BaseModel):
    """An event as its emitter describes it: `id` and `occurred` are set by the control plane
    when absent (an id makes a retried emit idempotent)."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(default=None, min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/-]*$")
    occurred: datetime | None = None
    #: None: the emitting flow run (a flow process), else required.
    resource: EventResource | None = None
    related: list[EventResource] = Field(default_factory=list, max_length=MAX_RELATED_RESOURCES)
    payload: dict[str, Any] = Field(default_factory=dict)


class EmitEventsRequest(BaseModel):
    """Body of `POST /events`."""

    model_config = ConfigDict(extra="forbid")

    events: list[EventDraft] = Field(min_length=1, max_length=MAX_EVENTS_PER_EMIT)


class EventsEmitted(BaseModel):
    """Answer of `POST /events`: how many events were recorded."""

    accepted: int
