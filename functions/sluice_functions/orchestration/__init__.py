"""Flow-run orchestration: the rule table and the pure functions that apply it (no I/O)."""

from .leases import DEFAULT_LEASES, LeasePolicy
from .rules import TRANSITION_RULES, Gate, Mover, Rule, refusal
from .transitions import (
    Transition,
    cancel,
    check_lease,
    holds_live_attempt,
    claim,
    is_suspended,
    propose_state,
    resume,
    retry,
    suspend,
)

__all__ = [
    "DEFAULT_LEASES", "LeasePolicy", "TRANSITION_RULES", "Gate", "Mover", "Rule", "refusal",
    "holds_live_attempt",
    "Transition", "cancel", "check_lease", "claim", "propose_state", "retry",
    "is_suspended", "suspend", "resume",
]
