"""A worker session (`ports.WorkerSession`) as the JSON document both store adapters keep."""

from __future__ import annotations

import json
from datetime import datetime

from sluice.exceptions import Conflict

from ..ports import WorkerSession
from ..timemath import as_utc


def session_document(session: WorkerSession) -> str:
    """The session as a JSON document (times in ISO 8601, UTC)."""
    return json.dumps({
        "session": session.session, "pool": session.pool, "worker": session.worker,
        "renewed_at": as_utc(session.renewed_at).isoformat(),
        "lease_expires_at": as_utc(session.lease_expires_at).isoformat(),
        "held": dict(session.held),
    }, separators=(",", ":"))


def session_of(document: str) -> WorkerSession:
    """The session stored as `document`; `UnreadableRecord`-like `Conflict` if it is not one."""
    try:
        fields = json.loads(document)
        return WorkerSession(
            session=str(fields["session"]), pool=str(fields["pool"]),
            worker=str(fields["worker"]),
            renewed_at=as_utc(datetime.fromisoformat(fields["renewed_at"])),
            lease_expires_at=as_utc(datetime.fromisoformat(fields["lease_expires_at"])),
            held={str(run): str(lease) for run, lease in dict(fields["held"]).items()})
    except (ValueError, KeyError, TypeError) as error:
        raise Conflict(f"a stored worker session is unreadable ({error}); it is replaced by the "
                       "worker's next session", details={"reason": "unreadable_session"}) from None
