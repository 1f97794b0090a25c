"""`EventPublisher` on EventBridge: every Sluice event is put on a bus, so users route them with
ordinary EventBridge rules (e.g. `{"source": ["sluice.sluice"], "detail-type":
["sluice.flow-run.Failed"]}` -> an SNS topic).

Entry: source `sluice.<stack prefix>`, detail-type the event's name, detail the event as JSON,
time its `occurred`, resources empty (EventBridge wants ARNs there; Sluice ids are in detail).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from sluice.models import SluiceEvent

from .errors import aws_errors

LOGGER = logging.getLogger(__name__)
#: PutEvents takes at most 10 entries per request:
#: https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_PutEvents.html
MAX_ENTRIES_PER_PUT = 10
#: Rounds of resending the entries PutEvents failed (throttled, internal) before giving up.
MAX_RESEND_ROUNDS = 2


class EventBridgePublisher:
    """Puts Sluice events on an EventBridge bus ("default": the account's default bus)."""

    def __init__(self, client: Any, *, stack_prefix: str, bus_name: str = "default") -> None:
        self._client = client
        self.source = f"sluice.{stack_prefix}"
        self.bus_name = bus_name

    def entry(self, event: SluiceEvent) -> dict[str, Any]:
        """The PutEvents entry of one event."""
        return {
            "Source": self.source,
            "DetailType": event.name,
            "Detail": event.model_dump_json(),
            "Time": event.occurred,
            "EventBusName": self.bus_name,
        }

    def publish(self, events: Sequence[SluiceEvent]) -> None:
        """Put `events` in batches of ten; entries EventBridge refused are sent again (a
        partial failure is normal under throttling), and raises `ServiceUnavailable`/`Throttled`
        or `RuntimeError` with the count when some still fail."""
        failed = 0
        for start in range(0, len(events), MAX_ENTRIES_PER_PUT):
            entries = [self.entry(e) for e in events[start:start + MAX_ENTRIES_PER_PUT]]
            failed += self._put(entries)
        if failed:
            raise RuntimeError(f"EventBridge refused {failed} of {len(events)} event(s) on bus "
                               f"{self.bus_name}; see the FailedEntryCount in the logs")

    def _put(self, entries: list[dict[str, Any]]) -> int:
        for _ in range(MAX_RESEND_ROUNDS + 1):
            with aws_errors("put events"):
                response = self._client.put_events(Entries=entries)
            if not response.get("FailedEntryCount"):
                return 0
            results = response.get("Entries", [])
            refused = [(entry, result) for entry, result in zip(entries, results)
                       if result.get("ErrorCode")]
            LOGGER.warning("EventBridge refused %d entries: %s", len(refused),
                           sorted({r.get("ErrorCode") for _, r in refused}))
            entries = [entry for entry, _ in refused]
            if not entries:
                return 0
        return len(entries)
