"""Sluice events: something that happened (a run changed state, a worker went offline, a user's
code said so), with a stable, documented schema. On AWS each one is also put on EventBridge
(source `sluice.<stack prefix>`, detail-type = the event's name, detail = the event), so users
route them with ordinary rules; embedded, they are stored with a retention.

Not to be confused with `EventsBatch` (task-run records and log lines a flow process reports).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .ids import new_id

#: Bytes of one event as JSON. EventBridge takes 256 KB per PutEvents entry
#: (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-putevent-size.html); a payload
#: this small keeps a whole batch of ten under it.
MAX_EVENT_BYTES = 16 * 1024
#: Related resources of one event.
MAX_RELATED_RESOURCES = 20
#: Version of the schema below, in every event (`schema_version`): consumers can tell.
EVENT_SCHEMA_VERSION = 1


class EventResource(BaseModel):
    """What an event is about, or related to: `kind` is flow-run, deployment, pool, worker, flow,
    tag, automation or any kind user code names; `id` is unique within its kind."""

    model_config = ConfigDict(extra="forbid")

    kind: str = Field(min_length=1, max_length=40)
    id: str = Field(min_length=1, max_length=200)
    name: str | None = Field(default=None, max_length=200)


class SluiceEvent(BaseModel):
    """One event. `name` is dotted: `sluice.flow-run.Failed`, `sluice.worker.offline`, ... (the
    `sluice.` prefix is reserved for the control plane's own; user code emits any other name)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(default_factory=new_id, min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/-]*$")
    occurred: datetime
    resource: EventResource
    related: list[EventResource] = Field(default_factory=list, max_length=MAX_RELATED_RESOURCES)
    payload: dict[str, Any] = Field(default_factory=dict)
    schema_version: int = EVENT_SCHEMA_VERSION

    def related_of(self, kind: str) -> list[EventResource]:
        """The related resources of one kind (e.g. every "tag")."""
        return [r for r in self.related if r.kind == kind]
