"""Request bodies of events batches, built on the sender's thread (issue 20).

Each list of a batch is serialized by one call into pydantic-core (no Python-level loop per
record, and no interpreter switch in the middle of it), and the body is joined from those
pieces as raw JSON. A batch over the byte limit is cut in halves until each half fits, so the
common case serializes every record exactly once. `send_in_order` keeps up to two requests in
flight while it builds the next body, so a backlog (a run's end) is bound by the control plane,
not by this process's round trips.
"""

from __future__ import annotations

import collections
import functools
import json
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future
from typing import Any, NamedTuple, TypeVar

from .. import exceptions as errors
from .. import redaction
from ..models import MAX_EVENTS_BATCH_BYTES, LogRecord, TaskRun
from ..models._fast import construct
from .report_buffer import Snapshot, Taken

#: A batch stays this far under the API's limit: the envelope and escaping take some room.
BATCH_BYTES = int(MAX_EVENTS_BATCH_BYTES * 0.9)
#: The batch field of first-time final task runs (see `EventsBatch.finished_task_runs`).
FINISHED_FIELD = "finished_task_runs"

T = TypeVar("T")


class Chunk(NamedTuple):
    """One request: its body (a JSON object, closing brace last) and the records it carries."""

    body: bytes
    task_runs: list[Snapshot]
    finished: list[Snapshot]
    logs: list[LogRecord]

    @property
    def snapshots(self) -> list[Snapshot]:
        return self.task_runs + self.finished

    def without_finished_field(self, lease: str | None) -> Chunk:
        """The same records with the first-time final ones as ordinary task runs (for a
        control plane that does not know `finished_task_runs`)."""
        return _chunk(self.task_runs + self.finished, [], self.logs, lease)


def chunks(taken: Taken, max_count: int, lease: str | None = None) -> Iterator[Chunk]:
    """Request bodies within the API's count and byte limits, each naming the attempt's
    lease when there is one (a stale attempt's batch gets 409)."""
    lists = (taken.task_runs, taken.finished, taken.logs)
    total = sum(map(len, lists))
    for start in range(0, total, max_count):
        yield from _fitting(lists, start, min(total, start + max_count), lease)


def empty_body(lease: str | None) -> bytes:
    return json.dumps({"task_runs": [], "logs": [], **({"lease": lease} if lease else {})},
                      separators=(",", ":")).encode()


def refuses_field(exc: errors.ValidationError, field: str) -> bool:
    """Whether a 422 refuses the batch's top-level `field` itself (an older control plane,
    whose batches forbid unknown fields), not something inside it."""
    for detail in exc.details or []:
        if not isinstance(detail, dict):
            continue
        loc = [part for part in (detail.get("loc") or []) if part != "body"]
        if loc == [field]:
            return True
    return False


def _fitting(lists: tuple[list[Any], ...], start: int, stop: int,
             lease: str | None) -> Iterator[Chunk]:
    """Records `start`..`stop` of the lists taken end to end, in as many chunks as fit."""
    task_runs, finished, logs = (
        records[max(0, start - offset):max(0, stop - offset)]
        for records, offset in zip(lists, (0, len(lists[0]), len(lists[0]) + len(lists[1]))))
    chunk = _chunk(task_runs, finished, logs, lease)
    if len(chunk.body) <= BATCH_BYTES or stop - start <= 1:
        yield chunk  # a single record over the limit goes anyway: the API names the problem
        return
    middle = (start + stop) // 2
    yield from _fitting(lists, start, middle, lease)
    yield from _fitting(lists, middle, stop, lease)


def _chunk(task_runs: list[Snapshot], finished: list[Snapshot], logs: list[LogRecord],
           lease: str | None) -> Chunk:
    task_run_list, log_list = _adapters()
    parts = [b'{"task_runs":', _one_a_line(task_run_list.dump_json(_records(task_runs)),
                                           len(task_runs))]
    if finished:
        parts += [b',"', FINISHED_FIELD.encode(), b'":',
                  _one_a_line(task_run_list.dump_json(_records(finished)), len(finished))]
    parts += [b',"logs":', log_list.dump_json(logs)]
    if lease:
        parts += [b',"lease":', json.dumps(lease).encode()]
    parts.append(b"}")
    return Chunk(b"".join(parts), task_runs, finished, logs)


def _one_a_line(records_json: bytes, count: int) -> bytes:
    """A JSON list of `count` task runs with each record alone on a line (still the same JSON:
    line breaks between tokens are whitespace). A control plane that keeps each record's JSON
    document stores these lines as they are instead of serializing each record again (the
    API's framed bodies, `sluice_functions.api.batch_body`).

    A record is an object whose first key is `id`, so `},{"id":` in the list is the border of
    two records: inside a string the quote would be escaped, and only a free-form value (state
    `details`) could hold it otherwise; then the count of breaks tells, and the list goes
    unframed."""
    if not count:
        return records_json
    framed = b"[\n" + records_json[1:-1].replace(b'},{"id":', b'}\n,\n{"id":') + b"\n]"
    return framed if framed.count(b"\n") == 2 * count else records_json


def _records(snapshots: list[Snapshot]) -> list[Snapshot]:
    # The snapshots serialize as they are (no model around each: fewer objects for the flow
    # process's garbage collector); secrets in state messages are masked here, before
    # anything leaves the process.
    if not redaction.active():
        return snapshots
    return [redaction.redact_task_run(construct(TaskRun, snapshot)).__dict__
            for snapshot in snapshots]


@functools.cache
def _adapters() -> tuple[Any, Any]:
    # Built on first use: a process that never reports to a control plane never pays for it.
    from pydantic import TypeAdapter
    from typing_extensions import TypedDict

    # A task run's fields as a typed dict, serialized exactly as the model is (a test pins
    # the bytes): the engine's snapshots are dicts of those fields.
    record = TypedDict("TaskRunRecord", {  # type: ignore[misc]
        name: field.annotation for name, field in TaskRun.model_fields.items()})
    return TypeAdapter(list[record]), TypeAdapter(list[LogRecord])


class Undelivered(Exception):
    """Sending stopped: `items` were not delivered (in their order); the cause is chained."""

    def __init__(self, items: list[Any]) -> None:
        super().__init__(f"{len(items)} batches not delivered")
        self.items = items


def send_in_order(pieces: Iterator[T], send: Callable[[T, bool], Any], courier: Executor, *,
                  in_flight: int = 2) -> Any:
    """Send `pieces` with `send(piece, is_last)` (all but the last on `courier`'s threads),
    up to `in_flight` requests out at once while
    the next piece is built (serialized) here: the control plane works while this process
    builds the next body, and a request waiting for this process's attention (its GIL) does
    not leave the control plane idle. The last piece goes alone, once all others were
    delivered (the run's final state rides with it). Returns its answer (None for no pieces).
    An exception from `send` stops it: `Undelivered` names the pieces not delivered (the
    remaining ones are built for that), the first exception is its cause."""
    upcoming = next(pieces, None)
    if upcoming is None:
        return None
    following = next(pieces, None)
    if following is None:  # the common case: one request, no helper thread
        try:
            return send(upcoming, True)
        except Exception as exc:
            raise Undelivered([upcoming]) from exc
    out: collections.deque[tuple[Future[Any], T]] = collections.deque()
    try:
        while following is not None:
            out.append((_submit(courier, send, upcoming, False), upcoming))
            upcoming, following = following, next(pieces, None)  # built meanwhile
            while out and (len(out) >= in_flight or following is None):
                out[0][0].result()
                out.popleft()
        return send(upcoming, True)
    except Exception as exc:
        failed = [piece for future, piece in out if future.exception() is not None]
        rest = [upcoming] + ([following] if following is not None else [])
        raise Undelivered(failed + rest + list(pieces)) from exc


#: Requests the background sender keeps out at once. While the flow's own threads hold the
#: GIL, each step of a request (sending, reading the answer) waits up to a switch interval for
#: it: a request took 25-55 ms where the control plane needed ~12, and with two out it fell
#: behind a flow reporting ~25,000 task runs a second; with four it keeps up.
STREAMING_IN_FLIGHT = 4


def send_streaming(pieces: Iterator[T], send: Callable[[T], Any], courier: Executor, *,
                   in_flight: int = STREAMING_IN_FLIGHT) -> None:
    """Send each of `pieces` with `send(piece)` on `courier`'s threads as soon as it is built,
    up to `in_flight` requests out at once; `pieces` may wait for its next piece meanwhile (the
    background sender waits for the next batch to fill). Order between the requests out is not
    kept (each record carries its version, and log lines their ids). An exception from `send`
    stops it: `Undelivered` names the pieces not delivered, those `pieces` still gives
    included (it should end soon once a send failed), the first exception is its cause."""
    out: collections.deque[tuple[Future[Any], T]] = collections.deque()
    try:
        for piece in pieces:
            out.append((_submit(courier, send, piece), piece))
            while out and (len(out) >= in_flight or out[0][0].done()):
                out[0][0].result()
                out.popleft()
        while out:
            out[0][0].result()
            out.popleft()
    except Exception as exc:
        failed = [piece for future, piece in out if future.exception() is not None]
        raise Undelivered(failed + list(pieces)) from exc


def _submit(courier: Any, send: Callable[..., Any], *args: Any) -> Any:
    """`courier.submit(send, *args)`, or the call made here once the interpreter exits (it
    starts no more threads then, and the reporter's last flush runs at exit)."""
    try:
        return courier.submit(send, *args)
    except RuntimeError:
        done: Future[Any] = Future()
        try:
            done.set_result(send(*args))
        except Exception as exc:  # noqa: BLE001 - handed over as a courier's would be
            done.set_exception(exc)
        return done
