"""`LogSink` on CloudWatch Logs: one log stream per flow run in one log group."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from sluice.exceptions import BadRequest
from sluice.models import MAX_PAGE_LIMIT, LogRecord, Page

from .dynamo_items import utc
from .errors import aws_errors, error_code

# PutLogEvents limits: https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutLogEvents.html
#: Most events in one PutLogEvents call.
MAX_EVENTS_PER_BATCH = 10_000
#: Largest batch: the UTF-8 size of every message plus `EVENT_OVERHEAD_BYTES` per event.
MAX_BATCH_BYTES = 1_048_576
EVENT_OVERHEAD_BYTES = 26
#: Largest single event. Newer docs allow 1 MB; 256 KB is the older, still-documented ceiling
#: and holds everywhere. `sluice.models.MAX_LOG_MESSAGE_CHARS` keeps real records far below it.
MAX_EVENT_BYTES = 256 * 1024 - EVENT_OVERHEAD_BYTES
#: The events of one call must lie within 24 hours of each other.
MAX_BATCH_SPAN_MS = 24 * 60 * 60 * 1000
#: GetLogEvents can answer an empty page before later events (the log follower loops); a read
#: follows this many empty pages before it reports "caught up for now".
MAX_EMPTY_PAGES_PER_READ = 20
TRUNCATION_MARK = "…[truncated]"


@dataclass(frozen=True)
class LogEvent:
    """One PutLogEvents input event, with its size as PutLogEvents counts it."""

    timestamp_ms: int
    message: str
    size: int


def to_event(record: LogRecord) -> LogEvent:
    """The record as a CloudWatch event: the whole record as JSON (id included, for dedupe on
    read, and the exact timestamp, which CloudWatch rounds to milliseconds)."""
    message = record.model_dump_json()
    size = len(message.encode())
    text = record.message
    while size > MAX_EVENT_BYTES and text:
        # Only records with pathological escaping get here; keep the event, cut its text. Every
        # character dropped shortens the JSON by at least one byte, so this ends quickly.
        text = text[: max(0, len(text) - (size - MAX_EVENT_BYTES) - len(TRUNCATION_MARK))]
        message = record.model_copy(update={"message": text + TRUNCATION_MARK}).model_dump_json()
        size = len(message.encode())
    timestamp_ms = int(utc(record.timestamp).timestamp() * 1000)
    return LogEvent(timestamp_ms, message, size + EVENT_OVERHEAD_BYTES)


def batches(records: Sequence[LogRecord]) -> Iterator[list[LogEvent]]:
    """Split records into PutLogEvents batches: chronological, and each within the count, byte
    and 24-hour-span limits. The sort is stable, so equal timestamps keep append order."""
    events = sorted((to_event(record) for record in records), key=lambda e: e.timestamp_ms)
    batch: list[LogEvent] = []
    batch_bytes = 0
    for event in events:
        if batch and (
            len(batch) >= MAX_EVENTS_PER_BATCH
            or batch_bytes + event.size > MAX_BATCH_BYTES
            or event.timestamp_ms - batch[0].timestamp_ms > MAX_BATCH_SPAN_MS
        ):
            yield batch
            batch, batch_bytes = [], 0
        batch.append(event)
        batch_bytes += event.size
    if batch:
        yield batch


@dataclass
class ReadPosition:
    """Where a reader stands: CloudWatch's forward token, plus the ids already returned at the
    latest millisecond, so a record appended twice (a retried batch) is returned once."""

    flow_run_id: str
    token: str | None = None
    last_ms: int = -1
    ids_at_last_ms: list[str] = field(default_factory=list)

    def encode(self) -> str:
        raw = json.dumps({"r": self.flow_run_id, "t": self.token, "m": self.last_ms,
                          "i": self.ids_at_last_ms}, separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, cursor: str | None, flow_run_id: str) -> ReadPosition:
        """The position in `cursor`; `BadRequest` unless a read of this run issued it."""
        if not cursor:
            return cls(flow_run_id)
        try:
            raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
            position = cls(raw["r"], raw["t"], int(raw["m"]), [str(i) for i in raw["i"]])
            if position.flow_run_id != flow_run_id:
                raise ValueError("a cursor of another run")
            if position.token is not None and not isinstance(position.token, str):
                raise TypeError("token")
            return position
        except (ValueError, TypeError, KeyError, binascii.Error, UnicodeDecodeError) as error:
            raise _bad_cursor() from error

    def admit(self, timestamp_ms: int, record_id: str) -> bool:
        """Whether an event read next is new to this reader; records it as seen."""
        if timestamp_ms < self.last_ms:
            return False  # before the position: already read, or appended late (ports allow a skip)
        if timestamp_ms > self.last_ms:
            self.last_ms, self.ids_at_last_ms = timestamp_ms, []
        if record_id in self.ids_at_last_ms:
            return False
        self.ids_at_last_ms.append(record_id)
        return True


class CloudWatchLogSink:
    """Run logs in a CloudWatch Logs group (created by the stack, with its retention policy).

    A run's stream is created on its first append. CloudWatch cannot refuse a repeated event, so
    repeats are dropped on read: events with the same record id share a timestamp, and the
    cursor remembers the ids it returned at its latest millisecond.
    """

    def __init__(self, client: Any, log_group: str) -> None:
        self._client = client
        self._group = log_group

    @staticmethod
    def stream_name(flow_run_id: str) -> str:
        # ':' and '*' are the characters a stream name cannot hold.
        return "flow-run/" + flow_run_id.replace(":", "_").replace("*", "_")

    def _put(self, stream: str, batch: list[LogEvent]) -> int:
        """Put one batch, creating the stream when it does not exist yet; returns events kept."""
        request = {
            "logGroupName": self._group,
            "logStreamName": stream,
            "logEvents": [{"timestamp": e.timestamp_ms, "message": e.message} for e in batch],
        }
        with aws_errors("put log events"):
            try:
                response = self._client.put_log_events(**request)
            except ClientError as error:
                if error_code(error) != "ResourceNotFoundException":
                    raise
                self._create_stream(stream)
                response = self._client.put_log_events(**request)
        return len(batch) - _rejected(response.get("rejectedLogEventsInfo"), len(batch))

    def _create_stream(self, stream: str) -> None:
        try:
            self._client.create_log_stream(logGroupName=self._group, logStreamName=stream)
        except ClientError as error:
            if error_code(error) != "ResourceAlreadyExistsException":  # a concurrent append
                raise

    def append(self, flow_run_id: str, records: Sequence[LogRecord]) -> int:
        stream = self.stream_name(flow_run_id)
        return sum(self._put(stream, batch) for batch in batches(records))

    def delete(self, flow_run_id: str) -> None:
        """Delete the run's stream (one per run; needs `logs:DeleteLogStream`). Without that
        right the records stay until the log group's retention expires them."""
        with aws_errors("delete log stream"):
            try:
                self._client.delete_log_stream(logGroupName=self._group,
                                               logStreamName=self.stream_name(flow_run_id))
            except ClientError as error:
                if error_code(error) != "ResourceNotFoundException":  # no logs: nothing to do
                    raise

    def read(self, flow_run_id: str, *, cursor: str | None = None,
             limit: int = 100) -> Page[LogRecord]:
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE_LIMIT:
            raise BadRequest(f"limit must be an integer from 1 to {MAX_PAGE_LIMIT}, got {limit!r}",
                             details={"field": "limit"})
        position = ReadPosition.decode(cursor, flow_run_id)
        request: dict[str, Any] = {
            "logGroupName": self._group,
            "logStreamName": self.stream_name(flow_run_id),
            "startFromHead": True,
            "limit": limit,  # within GetLogEvents' 1..10,000
        }
        found: list[LogRecord] = []
        for _ in range(MAX_EMPTY_PAGES_PER_READ):
            if position.token:
                request["nextToken"] = position.token
            with aws_errors("get log events"):
                try:
                    response = self._client.get_log_events(**request)
                except ClientError as error:
                    if error_code(error) == "InvalidParameterException" and position.token:
                        raise _bad_cursor() from error  # a token CloudWatch did not issue
                    if error_code(error) != "ResourceNotFoundException":
                        raise
                    break  # no stream yet: no logs yet, poll again with the same cursor
            for event in response.get("events", []):
                record = _record_of(event["message"])
                if record is not None and position.admit(int(event["timestamp"]), record.id):
                    found.append(record)
            token = response.get("nextForwardToken")
            advanced = token is not None and token != position.token
            if advanced:
                position.token = token
            if found or not advanced:
                break
        return Page[LogRecord](items=found, next_cursor=position.encode())


def _bad_cursor() -> BadRequest:
    return BadRequest("invalid log cursor: pass the next_cursor of the previous read of this run",
                      details={"field": "cursor"})


def _record_of(message: str) -> LogRecord | None:
    """The record an event holds; None for an event Sluice did not write (skipped)."""
    try:
        return LogRecord.model_validate_json(message)
    except ValueError:
        return None


def _rejected(info: dict[str, int] | None, count: int) -> int:
    """How many events PutLogEvents rejected as too old, expired or too new (index ranges)."""
    if not info:
        return 0
    rejected: set[int] = set()
    if "tooOldLogEventEndIndex" in info:
        rejected.update(range(0, info["tooOldLogEventEndIndex"]))
    if "expiredLogEventEndIndex" in info:
        rejected.update(range(0, info["expiredLogEventEndIndex"]))
    if "tooNewLogEventStartIndex" in info:
        rejected.update(range(info["tooNewLogEventStartIndex"], count))
    return len(rejected)
