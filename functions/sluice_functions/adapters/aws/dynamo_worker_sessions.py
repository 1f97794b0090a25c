"""Worker sessions (per-worker heartbeats) and batch reads of runs in the DynamoDB run store.
A mixin of `DynamoRunStore`, kept apart so that module stays readable.

One item per session (`dynamo_items.worker_session_key`): its JSON document, and beside it the
renewal and expiry instants (integer microseconds) that the conditional renewal compares. A beat
costs one consistent GetItem, one conditional PutItem (1 KB: a few hundred runs' leases) and one
BatchGetItem of its runs (`dynamo_table.MAX_BATCH_GET_KEYS` keys per request).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sluice.exceptions import Conflict
from sluice.models import FlowRun

from ...config import TABLE_PARTITION_KEY, TTL_ATTRIBUTE
from ...ports import WORKER_SESSION_KEPT, WorkerSession
from ..records import readable
from ..worker_session_records import session_document, session_of
from . import dynamo_items as items
from . import dynamo_run_item as run_item
from .dynamo_table import NOT_EXISTS, SingleTable

#: Attributes beside the document that the renewal's condition compares.
RENEWED_US = "renewed_us"
EXPIRES_US = "expires_us"


def _micros(moment: datetime) -> int:
    delta = items.utc(moment) - items.utc(datetime(1970, 1, 1))
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


class DynamoWorkerSessions:
    """`RunStore.get_flow_runs`, `get_worker_session` and `put_worker_session`."""

    _table: SingleTable

    def get_flow_runs(self, flow_run_ids: Sequence[str]) -> list[FlowRun]:
        ids = list(dict.fromkeys(flow_run_ids))
        # `batch_get` sends MAX_BATCH_GET_KEYS (100, BatchGetItem's limit) keys per request.
        found = readable(self._table.batch_get([items.run_key(i) for i in ids], "get flow runs"),
                         run_item.run_of,
                         kind="flow run", ref=lambda i: i[TABLE_PARTITION_KEY]["S"])
        return found

    def get_worker_session(self, session: str) -> WorkerSession | None:
        item = self._table.get(items.worker_session_key(session), "get worker session")
        return None if item is None else session_of(items.data_of(item))

    def put_worker_session(self, session: WorkerSession, *,
                           previous_renewed_at: datetime | None,
                           alive_at: datetime) -> WorkerSession:
        expires = items.utc(session.lease_expires_at) + WORKER_SESSION_KEPT
        item = {
            **items.worker_session_key(session.session),
            items.DATA: items.s(session_document(session)),
            RENEWED_US: items.n(_micros(session.renewed_at)),
            EXPIRES_US: items.n(_micros(session.lease_expires_at)),
            TTL_ATTRIBUTE: items.n(int(expires.timestamp())),
        }
        if previous_renewed_at is None:
            request = self._table.put_request(item, NOT_EXISTS)
        else:
            # Compared against the write's own clock: a lease that ran out while this beat was
            # in flight is not renewed (the monitor may have judged the session silent).
            request = self._table.put_request(
                item, "#renewed = :previous AND #expires >= :alive",
                {"#renewed": RENEWED_US, "#expires": EXPIRES_US},
                {":previous": items.n(_micros(previous_renewed_at)),
                 ":alive": items.n(_micros(alive_at))})
        try:
            self._table.put(request, "renew worker session")
        except Conflict as error:
            raise Conflict(f"worker session {session.session} changed or expired meanwhile",
                           details={"session": session.session}) from error
        return session
