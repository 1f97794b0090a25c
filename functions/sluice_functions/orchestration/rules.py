"""The one table of flow-run transition rules: (from state type, to state type) -> rule.

Every flow-run state change on the server is checked here (DESIGN.md, "Runs and states"). The
table only answers "may a run of type X move to type Y, and who may make that move"; the effects
of a move (leases, run counts, retries, re-enqueueing) live in `transitions.py`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from sluice.models import StateType


class Mover(enum.Enum):
    """Who asks for a transition; some rules only let a particular mover through."""

    #: The run's own process or its worker (`POST /flow-runs/{id}/state`); lease-fenced.
    REPORT = "report"
    #: The control plane itself (the monitor marking a dead run Crashed, a user's cancel).
    SERVER = "server"
    #: A worker claiming a queued run (`POST /flow-runs/{id}/claim`).
    CLAIM = "claim"
    #: A user asking for a new attempt (`POST /flow-runs/{id}/retry`).
    RETRY = "retry"
    #: An operator (or an automation) suspending a run (`POST /flow-runs/{id}/suspend`): it
    #: becomes Suspended (type PAUSED) and no attempt holds it until it is resumed.
    SUSPEND = "suspend"


class Gate(enum.Enum):
    """What a table cell lets through."""

    ACCEPT = "accept"
    REJECT = "reject"
    #: A queued run that no attempt holds leaves Scheduled only through a claim (which issues
    #: the lease). Runs without a pool (a flow started as a plain script) and runs waiting for an
    #: in-process retry (their process keeps the lease) start again by themselves.
    CLAIM_IF_QUEUED = "claim_if_queued"
    #: Terminal states are sticky: only an explicit retry starts a new attempt.
    RETRY_ONLY = "retry_only"
    #: Only an operator's suspend makes a run that is not Running PAUSED (a run pauses itself
    #: only while it runs); otherwise refused with the rule's reason.
    SUSPEND_ONLY = "suspend_only"
    #: Only while an attempt holds the run: a Suspended run (PAUSED, in a pool, no lease) has
    #: no process to start or to confirm a cancellation; otherwise refused with the reason.
    HELD_ONLY = "held_only"


@dataclass(frozen=True)
class Rule:
    gate: Gate
    #: Why the transition is refused; formatted with {from_state} and {to_state}.
    reason: str = ""

    def refusal(
        self, from_type: StateType, to_type: StateType, *, needs_claim: bool, mover: Mover
    ) -> str | None:
        """None when `mover` may make this move, else the reason it may not."""
        names = {"from_state": from_type.value, "to_state": to_type.value}
        if self.gate is Gate.ACCEPT:
            return None
        if self.gate is Gate.CLAIM_IF_QUEUED:
            if not needs_claim or mover is Mover.CLAIM:
                return None
            return "a queued run leaves SCHEDULED only when a worker claims it".format(**names)
        if self.gate is Gate.RETRY_ONLY:
            if mover is Mover.RETRY:
                return None
            return "{from_state} is terminal; start a new attempt with retry".format(**names)
        if self.gate is Gate.SUSPEND_ONLY and mover is Mover.SUSPEND:
            return None
        if self.gate is Gate.HELD_ONLY and not needs_claim:
            return None
        return self.reason.format(**names)


_OK = Rule(Gate.ACCEPT)
_CLAIM = Rule(Gate.CLAIM_IF_QUEUED)
_RETRY = Rule(Gate.RETRY_ONLY)
_STICKY = Rule(Gate.REJECT, "{from_state} is terminal and cannot change")
_SAME = Rule(Gate.REJECT, "the run is already {from_state}")
_NOT_STARTED = Rule(Gate.REJECT, "a run that has not started cannot become {to_state}")
_NO_GOING_BACK = Rule(Gate.REJECT, "a run cannot go back from {from_state} to PENDING")
_ONLY_RUNNING_PAUSES = Rule(Gate.REJECT, "only a RUNNING run can pause")
_SUSPEND = Rule(Gate.SUSPEND_ONLY, "only a RUNNING run can pause (an operator may suspend it)")
_HELD_RESUMES = Rule(
    Gate.HELD_ONLY, "a suspended run starts again only when it is resumed (sluice flow-run resume)"
)
_HELD_CANCELS = Rule(
    Gate.HELD_ONLY, "nothing is running to confirm a cancellation; propose CANCELLED instead"
)
_CANCEL_DIRECTLY = Rule(
    Gate.REJECT, "nothing is running to confirm a cancellation; propose CANCELLED instead"
)
_BEING_CANCELLED = Rule(
    Gate.REJECT, "the run is being cancelled; only a final state is accepted"
)
_RESUME_FIRST = Rule(Gate.REJECT, "a PAUSED run must resume before it completes")

S, P, R, PA, CG = (
    StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING, StateType.PAUSED,
    StateType.CANCELLING,
)
CO, F, CA, CR = StateType.COMPLETED, StateType.FAILED, StateType.CANCELLED, StateType.CRASHED

#: TRANSITION_RULES[from][to]. Read a row as "a run that is <from> may become ...".
TRANSITION_RULES: Mapping[StateType, Mapping[StateType, Rule]] = {
    # Scheduled: rescheduling is fine; starting needs a claim for queued runs; a run that never
    # started can be cancelled or failed (e.g. by the scheduler), or crash (lost before start,
    # or its process died while it waited for an in-process retry); an operator may suspend it.
    S: {S: _OK, P: _CLAIM, R: _CLAIM, PA: _SUSPEND, CG: _CANCEL_DIRECTLY,
        CO: _NOT_STARTED, F: _OK, CA: _OK, CR: _OK},
    # Pending (claimed, the worker prepares the code): it may start, wait for a retry, finish
    # from a cache, or end; an operator may suspend it.
    P: {S: _OK, P: _SAME, R: _OK, PA: _SUSPEND, CG: _CANCEL_DIRECTLY,
        CO: _OK, F: _OK, CA: _OK, CR: _OK},
    # Running: anything but going back to Pending or repeating itself.
    R: {S: _OK, P: _NO_GOING_BACK, R: _SAME, PA: _OK, CG: _OK,
        CO: _OK, F: _OK, CA: _OK, CR: _OK},
    # Paused: the process waits; it may resume, be rescheduled, be cancelled, or end — but it
    # must resume before it completes. Suspended (PAUSED, no attempt holds it): only back to
    # Scheduled (resume: a new attempt is queued) or straight to Cancelled.
    PA: {S: _OK, P: _NO_GOING_BACK, R: _HELD_RESUMES, PA: _SAME, CG: _HELD_CANCELS,
         CO: _RESUME_FIRST, F: _OK, CA: _OK, CR: _OK},
    # Cancelling: waiting for the worker to confirm; only a final state, and whatever really
    # happened (it may have completed or failed before it noticed) is recorded.
    CG: {S: _BEING_CANCELLED, P: _BEING_CANCELLED, R: _BEING_CANCELLED, PA: _BEING_CANCELLED,
         CG: _SAME, CO: _OK, F: _OK, CA: _OK, CR: _OK},
    # Terminal states are sticky; Failed and Crashed runs can start again through a retry.
    CO: {S: _STICKY, P: _STICKY, R: _STICKY, PA: _STICKY, CG: _STICKY,
         CO: _STICKY, F: _STICKY, CA: _STICKY, CR: _STICKY},
    F: {S: _RETRY, P: _STICKY, R: _STICKY, PA: _STICKY, CG: _STICKY,
        CO: _STICKY, F: _STICKY, CA: _STICKY, CR: _STICKY},
    CA: {S: _STICKY, P: _STICKY, R: _STICKY, PA: _STICKY, CG: _STICKY,
         CO: _STICKY, F: _STICKY, CA: _STICKY, CR: _STICKY},
    CR: {S: _RETRY, P: _STICKY, R: _STICKY, PA: _STICKY, CG: _STICKY,
         CO: _STICKY, F: _STICKY, CA: _STICKY, CR: _STICKY},
}


def refusal(
    from_type: StateType, to_type: StateType, *, needs_claim: bool, mover: Mover
) -> str | None:
    """Why `mover` may not move a run from `from_type` to `to_type`; None if it may.

    `needs_claim` says whether the run's next attempt must be claimed from its pool's queue (it
    is in a pool and no live attempt holds its lease).
    """
    return TRANSITION_RULES[from_type][to_type].refusal(
        from_type, to_type, needs_claim=needs_claim, mover=mover
    )
