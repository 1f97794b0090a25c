"""Per-worker heartbeats: one request per worker process and interval renews the leases of all
the runs it holds (`POST /pools/{pool}/workers/{worker}/heartbeat`).

A worker process is a *session* (an id it makes at start). Its claims name the session
(`FlowRun.lease_session`), and each beat writes one item, the session's lease, with the runs it
renewed (`held`: run id -> lease). The runs themselves are only read (one batch), to answer
cancel / stop; they are not written per beat. The monitor then crashes a silent run only if its
session did not renew it either (`session_renewal`), and otherwise copies the session's renewal
to the run's `heartbeat_at` (`note_session_renewal`: one write per run per lease, not per beat).

An idle beat (a session that holds no run, naming none) is presence only: it writes the worker's
`last_seen` and nothing else (no session write), so an idle worker costs one write per beat and
may beat less often than a lease: every answer says how often (`WORKER_IDLE_BEAT`).

Why two attempts still never overlap (docs/reliability.md, "Leases and fencing"):

* The session write is a compare-and-set on the session's previous renewal, refused once the
  session's lease has expired while it held runs (checked against the clock at the write): a
  session the monitor may already have judged silent can never renew again; its worker fences
  all its runs. A session whose last renewal held no run gave the monitor nothing to judge
  (`session_renewal` finds no run in it), so it may start again after a quiet spell: the runs
  a later beat names are then renewed only by their own claim's recency (next rule).
* A beat renews a run only if the session renewed that very lease in its previous renewal (whose
  lease had not expired, or the write would be refused), or the run's own last sign of life (its
  claim or a per-run heartbeat) is younger than one lease. So a run the session dropped, or
  never renewed in time, is never revived by a later beat: its holder's deadline (last renewal
  that included it + duration) has passed or will, and the beat answers stop.
* The monitor crashes a run only when neither its own heartbeat nor its session's last renewal
  (with that run and lease in `held`) is younger than `duration + margin`; with the two rules
  above, once it decided, no later beat renews that attempt.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from datetime import datetime

from sluice.exceptions import Conflict, NotFound, StaleLease
from sluice.models import (
    SUSPENDED_STATE_NAME,
    FlowRun,
    HeldLease,
    RunLeaseOutcome,
    Worker,
    WorkerLeaseAnswer,
    WorkerLeaseHeartbeat,
)

from ..orchestration import LeasePolicy, holds_live_attempt
from ..ports import WORKER_SESSION_KEPT, RunStore, WorkerSession
from .attempts import lease_terms
from .lifecycle import CANCEL_STATE_TYPES
from .pools import WORKER_IDLE_BEAT

#: Compare-and-set rounds of one beat (only concurrent beats of one session race).
MAX_SESSION_WRITE_ATTEMPTS = 5

__all__ = ["WORKER_SESSION_KEPT", "worker_lease_heartbeat", "session_renewal",
           "note_session_renewal"]


def worker_lease_heartbeat(
    pool: str,
    worker: str,
    beat: WorkerLeaseHeartbeat,
    *,
    store: RunStore,
    clock: Callable[[], datetime],
    leases: LeasePolicy,
) -> WorkerLeaseAnswer:
    """Renew the session's lease over the runs of `beat.leases` and mark the worker seen.

    Raises `NotFound` for an unknown pool, `StaleLease` (409) when the session's lease already
    expired while it held runs (its worker must stop every run it holds and start a new
    session) or the session
    belongs to another worker, and `Conflict` when concurrent beats of the session kept racing.
    """
    now = clock()
    store.get_pool(pool)
    named = [held.flow_run_id for held in beat.leases]
    runs = {run.id: run for run in store.get_flow_runs(named)} if named else {}
    outcomes: dict[str, RunLeaseOutcome] = {}
    for _ in range(MAX_SESSION_WRITE_ATTEMPTS):
        previous = store.get_worker_session(beat.session)
        _check_session(previous, pool=pool, worker=worker, beat=beat, now=now)
        if not beat.leases and (previous is None or not previous.held):
            break  # presence only: nothing held before or now, nothing to renew or fence
        outcomes = {held.flow_run_id: _outcome(held, runs.get(held.flow_run_id), pool=pool,
                                               session=beat.session, previous=previous,
                                               now=now, leases=leases)
                    for held in beat.leases}
        renewal = WorkerSession(
            session=beat.session, pool=pool, worker=worker, renewed_at=now,
            lease_expires_at=leases.expires_at(now),
            held={held.flow_run_id: held.lease for held in beat.leases
                  if outcomes[held.flow_run_id].renewed})
        # A session that held nothing has no lease to outlive (module docstring): its write is
        # checked against its own expiry, still compare-and-set on its renewal.
        alive_at = clock() if previous is None or previous.held else previous.lease_expires_at
        try:
            store.put_worker_session(
                renewal, previous_renewed_at=previous.renewed_at if previous else None,
                alive_at=alive_at)
            break
        except Conflict:
            continue  # another beat of the session, or its lease ran out meanwhile: re-read
    else:
        raise Conflict(f"worker session {beat.session} kept changing while it was renewed; "
                       "beat again")
    store.upsert_worker(Worker(name=worker, pool=pool, host=beat.host, version=beat.version,
                               slots=beat.slots, last_seen=now, online=True))
    return WorkerLeaseAnswer(session=beat.session, runs=outcomes,
                             idle_beat_seconds=WORKER_IDLE_BEAT.total_seconds(),
                             **lease_terms(leases, now))


def _check_session(previous: WorkerSession | None, *, pool: str, worker: str,
                   beat: WorkerLeaseHeartbeat, now: datetime) -> None:
    if previous is None:
        return
    if (previous.pool, previous.worker) != (pool, worker):
        raise StaleLease(
            f"worker session {beat.session} belongs to worker {previous.worker} of pool "
            f"{previous.pool}; each worker process makes its own session id",
            details={"session": beat.session, "reason": "session_of_another_worker"})
    if previous.lease_expires_at < now and previous.held:
        raise StaleLease(
            f"worker session {beat.session} expired at {previous.lease_expires_at.isoformat()} "
            "(no heartbeat renewed it in time): its runs may already belong to new attempts. "
            "Stop every run of the session and start a new session for new claims",
            details={"session": beat.session, "reason": "session_expired"})


def _outcome(held: HeldLease, run: FlowRun | None, *, pool: str, session: str,
             previous: WorkerSession | None, now: datetime,
             leases: LeasePolicy) -> RunLeaseOutcome:
    """What the beat does for one run it names (see the module docstring for why)."""
    if run is None or not run.reachable_by_pool(pool):
        return RunLeaseOutcome(stop=True)  # deleted, or not this pool's: as if it did not exist
    cancel = run.state.type in CANCEL_STATE_TYPES
    if run.lease != held.lease:
        return RunLeaseOutcome(stop=True, state=run.state)  # a newer attempt, or none
    if not holds_live_attempt(run):
        # Ended with this lease (its process is finishing, or it was cancelled): nothing to
        # renew, nothing to kill; as the per-run heartbeat answers it.
        return RunLeaseOutcome(cancel_requested=cancel, state=run.state)
    if run.state.name == SUSPENDED_STATE_NAME or run.lease_session != session:
        # A suspended run gave up its attempt (its lease is void anyway): stop it at once.
        return RunLeaseOutcome(stop=True, state=run.state)
    renewed_before = previous is not None and previous.held.get(run.id) == held.lease
    claimed_recently = (run.heartbeat_at is not None
                        and run.heartbeat_at >= now - leases.duration)
    if not (renewed_before or claimed_recently):
        # Dropped from the session (or never renewed in time): its deadline has passed or will,
        # and the monitor may crash it; never revived.
        return RunLeaseOutcome(stop=True, state=run.state)
    return RunLeaseOutcome(renewed=True, cancel_requested=cancel, state=run.state)


def session_renewal(run: FlowRun, *, store: RunStore, since: datetime,
                    sessions: MutableMapping[str, WorkerSession | None]) -> datetime | None:
    """When the run's holder session last renewed the run's current lease, if at `since` or
    later (else None). `sessions` caches the sessions read (the monitor reads each once per
    tick)."""
    if run.lease_session is None or run.lease is None:
        return None
    if run.lease_session not in sessions:
        sessions[run.lease_session] = store.get_worker_session(run.lease_session)
    session = sessions[run.lease_session]
    if session is None or session.renewed_at < since or session.held.get(run.id) != run.lease:
        return None
    return session.renewed_at


def note_session_renewal(run: FlowRun, renewed_at: datetime, *, store: RunStore) -> None:
    """Record on the run that its session renewed it at `renewed_at` (`heartbeat_at`, which
    beats do not write): what people and tools read as its last sign of life stays true within
    one monitor pass of a lease, at one run write per lease length instead of one per beat.
    Best effort: a run that changed meanwhile (compare-and-set) is left for the next tick."""
    if run.heartbeat_at is not None and run.heartbeat_at >= renewed_at:
        return
    try:
        store.update_flow_run(run.model_copy(update={"heartbeat_at": renewed_at}))
    except (Conflict, NotFound):
        return
