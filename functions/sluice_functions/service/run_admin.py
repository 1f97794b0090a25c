"""Operator use cases on single flow runs beyond their lifecycle: find the run a user means
(`resolve_flow_run`) and delete a finished one (`delete_flow_run`)."""

from __future__ import annotations

import logging

from sluice.exceptions import BadRequest, Conflict, NotFound, SluiceError
from sluice.models import FlowRun, StateType

from ..ports import LogSink, RunStore
from .flow_runs import get_flow_run, public_view

logger = logging.getLogger(__name__)

#: Candidates an ambiguous reference lists; the store is asked for one more, to tell "exactly
#: five" from "more than five".
MAX_CANDIDATES_SHOWN = 5
#: How many characters of an id tables show (the end: ids start with a timestamp).
SHORT_ID_CHARS = 8
#: Longest reference looked up (ids are 32-36 characters, names at most 100).
MAX_REF_CHARS = 200
#: Only a finished run may be deleted: an active or scheduled one still has a worker or a
#: queue message that would find it gone.
DELETABLE_STATE_TYPES = frozenset(
    {StateType.COMPLETED, StateType.FAILED, StateType.CRASHED, StateType.CANCELLED}
)
#: Deletes retried when the run changes between the read and the delete.
MAX_DELETE_ATTEMPTS = 3


def short_id(flow_run_id: str) -> str:
    """The id as tables show it: its last `SHORT_ID_CHARS` characters."""
    return flow_run_id.replace("-", "")[-SHORT_ID_CHARS:]


def resolve_flow_run(ref: str, *, store: RunStore) -> FlowRun:
    """The run `ref` names: its full id, a unique id prefix (4+ characters), a unique id suffix
    (6+ characters, what tables show) or its name. Raises `NotFound` when nothing matches and
    `Conflict` listing up to five candidates when several do."""
    ref = ref.strip()
    if not ref or len(ref) > MAX_REF_CHARS:
        raise BadRequest(f"ref must be 1..{MAX_REF_CHARS} characters: a run's id, the start or "
                         "end of its id, or its name", details={"field": "ref"})
    for candidate in dict.fromkeys((ref, ref.lower())):
        try:
            return get_flow_run(candidate, store=store)
        except NotFound:
            pass
    matches = store.find_flow_runs(ref, limit=MAX_CANDIDATES_SHOWN + 1)
    if len(matches) == 1:
        return public_view(matches[0])
    if not matches:
        raise NotFound(f"no flow run matches {ref!r}; `sluice flow-run ls` lists them",
                       details={"ref": ref})
    shown = matches[:MAX_CANDIDATES_SHOWN]
    count = f"more than {MAX_CANDIDATES_SHOWN}" if len(matches) > len(shown) else str(len(matches))
    listing = "; ".join(_describe(run) for run in shown)
    raise Conflict(
        f"{ref!r} matches {count} flow runs ({listing}): give more characters or the full id",
        details={"ref": ref, "candidates": [_candidate(run) for run in shown]},
    )


def delete_flow_run(flow_run_id: str, *, store: RunStore, logs: LogSink) -> None:
    """Delete a finished run with its state history, task runs and logs. Raises `NotFound`
    (also for a second delete) and `Conflict` for a run that is not finished.

    The store deletes the run and what it keeps of it atomically where it can (one SQLite
    transaction; on DynamoDB the run and up to ~98 records in one transaction, see
    `DynamoRunStore.delete_flow_run`); its logs go after it, best effort: logs a failure leaves
    behind belong to no run and expire with the log retention (CloudWatch's retention policy,
    the embedded server's purge)."""
    for _ in range(MAX_DELETE_ATTEMPTS):
        run = store.get_flow_run(flow_run_id)
        if run.state.type not in DELETABLE_STATE_TYPES:
            raise Conflict(
                f"flow run {run.name} ({run.id}) is {run.state.name or run.state.type.value}: "
                "only a finished run (Completed, Failed, Crashed or Cancelled) can be deleted; "
                f"cancel it first (sluice flow-run cancel {run.id})",
                details={"flow_run_id": run.id, "state": run.state.type.value},
            )
        try:
            store.delete_flow_run(run)
            break
        except Conflict:
            continue  # it changed meanwhile (e.g. retried): decide again on what it is now
    else:
        raise Conflict(f"flow run {flow_run_id} kept changing while it was being deleted; "
                       "try again", details={"flow_run_id": flow_run_id})
    try:
        logs.delete(flow_run_id)
    except (SluiceError, OSError) as exc:
        logger.warning("flow run %s deleted, its logs not (they expire with the log retention):"
                       " %r", flow_run_id, exc)


def _describe(run: FlowRun) -> str:
    when = run.scheduled_at.strftime("%Y-%m-%d %H:%M:%S UTC") if run.scheduled_at else "unscheduled"
    return f"{short_id(run.id)} {run.name} of {run.flow_name}, {when}"


def _candidate(run: FlowRun) -> dict[str, str | None]:
    return {"id": run.id, "short_id": short_id(run.id), "name": run.name,
            "flow_name": run.flow_name,
            "scheduled_at": run.scheduled_at.isoformat() if run.scheduled_at else None}
