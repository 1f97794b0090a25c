"""The per-worker heartbeat: one request per worker process and interval renews the leases of
every run it holds (`POST /pools/{pool}/workers/{worker}/heartbeat`).

A worker process starts a *session* (a fresh id per process start); its claims name the session,
and each beat renews the session's lease with the list of runs it still holds. See
docs/reliability.md, "Leases and fencing", for why two attempts of a run still never overlap.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .api import LeaseTerms
from .names import PrintableText
from .bounds import MAX_CONCURRENCY_LIMIT
from .states import State

#: Most runs one beat renews: far above any worker's slots, and it keeps a beat's BatchGetItem
#: to five requests (100 keys each) and the session item well under DynamoDB's 400 KB.
MAX_LEASES_PER_HEARTBEAT = 500
#: Longest session id (workers send `new_id()`, 32 hex characters).
MAX_SESSION_CHARS = 64


class HeldLease(BaseModel):
    """One run the worker holds, with the lease its claim returned."""

    model_config = ConfigDict(extra="forbid")

    flow_run_id: str = Field(min_length=1, max_length=64)
    lease: str = Field(min_length=1, max_length=256)


class WorkerLeaseHeartbeat(BaseModel):
    """A worker process renews the leases of all its runs and says it is alive (idle too)."""

    model_config = ConfigDict(extra="forbid")

    #: Unique per worker process start: a restarted worker is a new session and cannot keep
    #: the old one's runs alive.
    session: str = Field(min_length=1, max_length=MAX_SESSION_CHARS, pattern=r"^[0-9A-Za-z_-]+$")
    host: PrintableText | None = Field(default=None, max_length=256)
    version: PrintableText | None = Field(default=None, max_length=64)
    slots: int | None = Field(default=None, ge=0, le=MAX_CONCURRENCY_LIMIT)
    #: Every run the worker still holds (an empty list: an idle worker's presence beat).
    leases: list[HeldLease] = Field(default_factory=list, max_length=MAX_LEASES_PER_HEARTBEAT)

    @field_validator("leases")
    @classmethod
    def _one_lease_per_run(cls, leases: list[HeldLease]) -> list[HeldLease]:
        runs = [held.flow_run_id for held in leases]
        if len(set(runs)) != len(runs):
            raise ValueError("each flow run may appear once in `leases`; send its current lease "
                             "only")
        return leases


class RunLeaseOutcome(BaseModel):
    """What a beat decided for one run of its list."""

    #: The run's lease now lasts `lease_seconds` from when the beat was sent.
    renewed: bool = False
    #: Cancel the run as asked (stop the flow process gracefully, report Cancelled).
    cancel_requested: bool = False
    #: The attempt is not this lease's to run any more (lost lease, crashed, suspended, deleted,
    #: or it dropped out of the session): stop its flow process at once, report nothing.
    stop: bool = False
    #: The run's state as read (None when the run is gone or not the pool's).
    state: State | None = None


class WorkerLeaseAnswer(LeaseTerms):
    """The terms of the session's renewed lease and, per run of the beat, its outcome."""

    session: str
    runs: dict[str, RunLeaseOutcome] = Field(default_factory=dict)
    #: How often a worker holding no run beats (presence only: the control plane writes no
    #: session for it, so the beat may come later than a lease). None: a control plane that
    #: still needs every session renewed within its lease (older than issue 20).
    idle_beat_seconds: float | None = None
