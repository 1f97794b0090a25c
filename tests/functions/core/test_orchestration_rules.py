"""Every (from, to) pair of the nine state types against a written expected table.

The tables below are written by hand from DESIGN.md's rules, not computed from the code: a
change to the rule table must change them too.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from sluice.exceptions import Conflict, StaleLease
from sluice.models import FlowRun, State, StateType, TransitionStatus
from sluice_functions.orchestration import (
    TRANSITION_RULES,
    Mover,
    claim,
    propose_state,
    retry,
)

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
ORDER = ["SCHEDULED", "PENDING", "RUNNING", "PAUSED", "CANCELLING",
         "COMPLETED", "FAILED", "CANCELLED", "CRASHED"]

# A = accepted, R = rejected, X = rejected with ABORT (the run's process should stop).
# For a run in a work pool; its attempt's process proposes (with the right lease) or the server.
EXPECTED_PROPOSALS = """
             SCHEDULED PENDING RUNNING PAUSED CANCELLING COMPLETED FAILED CANCELLED CRASHED
SCHEDULED        A        R       R      R        R          R        A       A         A
PENDING          A        R       A      R        R          A        A       A         A
RUNNING          A        R       R      A        A          A        A       A         A
PAUSED           A        R       A      R        A          R        A       A         A
CANCELLING       X        X       X      X        X          A        A       A         A
COMPLETED        X        X       X      X        X          X        X       X         X
FAILED           X        X       X      X        X          X        X       X         X
CANCELLED        X        X       X      X        X          X        X       X         X
CRASHED          X        X       X      X        X          X        X       X         X
"""

# An explicit retry (POST /flow-runs/{id}/retry) from each state: only Failed and Crashed.
EXPECTED_RETRIES = {
    "SCHEDULED": "R", "PENDING": "R", "RUNNING": "R", "PAUSED": "R", "CANCELLING": "X",
    "COMPLETED": "X", "FAILED": "A", "CANCELLED": "X", "CRASHED": "A",
}
# A worker's claim of a queued run in each state: only Scheduled (anything else is 409).
EXPECTED_CLAIMS = {
    "SCHEDULED": "A", "PENDING": "C", "RUNNING": "C", "PAUSED": "C", "CANCELLING": "C",
    "COMPLETED": "C", "FAILED": "C", "CANCELLED": "C", "CRASHED": "C",
}


def _table(text: str) -> dict[tuple[str, str], str]:
    header, *rows = [line.split() for line in text.strip().splitlines()]
    assert header == ORDER
    table = {}
    for from_name, *cells in rows:
        assert len(cells) == len(ORDER)
        table.update({(from_name, to_name): cell for to_name, cell in zip(ORDER, cells)})
    return table


def _run_in(state_type: str, *, leased: bool | None = None) -> FlowRun:
    """A queued run in `state_type`. Runs that were claimed hold lease "L"; a Scheduled run waits
    for its claim and holds none."""
    if leased is None:
        leased = state_type != "SCHEDULED"
    return FlowRun(
        id="run-1", flow_name="etl", pool="etl", state=State(type=StateType(state_type)),
        scheduled_at=NOW, run_count=0 if state_type == "SCHEDULED" else 1,
        lease="L" if leased else None, version=3,
    )


def _outcome(status: TransitionStatus) -> str:
    return {TransitionStatus.ACCEPT: "A", TransitionStatus.REJECT: "R",
            TransitionStatus.ABORT: "X"}[status]


def test_the_rule_table_has_a_rule_for_each_of_the_81_pairs():
    assert {(f, t) for f in TRANSITION_RULES for t in TRANSITION_RULES[f]} == {
        (f, t) for f in StateType for t in StateType
    }


@pytest.mark.parametrize("mover", [Mover.REPORT, Mover.SERVER])
@pytest.mark.parametrize("from_name", ORDER)
@pytest.mark.parametrize("to_name", ORDER)
def test_every_proposed_transition_is_accepted_or_refused_as_written(mover, from_name, to_name):
    expected = _table(EXPECTED_PROPOSALS)[(from_name, to_name)]
    # Given a queued run in `from_name`
    run = _run_in(from_name)
    if mover is Mover.REPORT and run.lease is None:
        # A run no attempt holds (waiting for its claim) takes no report at all: only its
        # claim, or an operator's cancel/retry, moves it.
        with pytest.raises(StaleLease):
            propose_state(run, State(type=StateType(to_name)), now=NOW, lease=None,
                          mover=mover)
        return
    # When its lease holder (or the server) proposes `to_name`
    outcome = propose_state(run, State(type=StateType(to_name)), now=NOW, lease=run.lease,
                            mover=mover)
    # Then the table's verdict holds, and a refusal changes nothing and says why
    assert _outcome(outcome.status) == expected, outcome.reason
    if expected == "A":
        assert outcome.write and outcome.run.state.type is StateType(to_name)
    else:
        assert not outcome.write and outcome.run is run and outcome.reason


@pytest.mark.parametrize("from_name", ORDER)
def test_an_explicit_retry_only_restarts_failed_or_crashed_runs(from_name):
    run = _run_in(from_name)
    outcome = retry(run, now=NOW)
    assert _outcome(outcome.status) == EXPECTED_RETRIES[from_name], outcome.reason
    if outcome.accepted:
        assert outcome.run.state.type is StateType.SCHEDULED and outcome.enqueue


@pytest.mark.parametrize("from_name", ORDER)
def test_only_a_scheduled_run_can_be_claimed(from_name):
    run = _run_in(from_name, leased=False)
    if EXPECTED_CLAIMS[from_name] == "C":
        with pytest.raises(Conflict):
            claim(run, worker="w2", new_lease="L2", now=NOW)
    else:
        outcome = claim(run, worker="w2", new_lease="L2", now=NOW)
        assert outcome.run.state.type is StateType.PENDING and outcome.run.lease == "L2"


def test_a_run_without_a_pool_is_started_by_its_creator_with_its_lease():
    # Given a flow started as a plain script: created Pending, held with the creator's lease
    run = _run_in("PENDING").model_copy(update={"pool": None})
    # When its own process starts it
    outcome = propose_state(run, State(type=StateType.RUNNING), now=NOW, lease="L")
    # Then no claim is needed, and the attempt is the one its creation counted
    assert outcome.accepted and outcome.run.run_count == 1 and outcome.run.lease == "L"


@pytest.mark.parametrize("lease", [None, "other"])
def test_a_write_without_the_runs_lease_is_refused(lease):
    for run in (_run_in("SCHEDULED"), _run_in("RUNNING"), _run_in("COMPLETED")):
        with pytest.raises(StaleLease):
            propose_state(run, State(type=StateType.FAILED), now=NOW, lease=lease)


def test_a_queued_run_waiting_for_an_in_process_retry_is_restarted_by_its_lease_holder():
    run = _run_in("SCHEDULED", leased=True).model_copy(update={"run_count": 1})
    outcome = propose_state(run, State(type=StateType.RUNNING, name="Retrying"), now=NOW,
                            lease="L")
    assert outcome.accepted and outcome.run.run_count == 2 and outcome.run.lease == "L"
