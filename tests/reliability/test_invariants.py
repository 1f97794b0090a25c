"""The checker itself: it must see what the scenarios could hide (no processes here)."""

from __future__ import annotations

import pytest

from .driver import Entry
from .invariants import attempt_windows, history_problems, ledger_problems

pytestmark = [pytest.mark.reliability]


def state(name: str, kind: str, at: float, **details) -> dict:  # noqa: ANN003
    from datetime import datetime, timezone

    return {"name": name, "type": kind, "details": details or None,
            "timestamp": datetime.fromtimestamp(at, timezone.utc).isoformat()}


S, P, R = ("Scheduled", "SCHEDULED"), ("Pending", "PENDING"), ("Running", "RUNNING")
CO, CR = ("Completed", "COMPLETED"), ("Crashed", "CRASHED")
RETRY = ("AwaitingRetry", "SCHEDULED")


def history(*steps) -> list[dict]:  # noqa: ANN002
    return [state(name, kind, 100.0 + i, **(extra[0] if extra else {}))
            for i, (name, kind, *extra) in enumerate(steps)]


def test_a_crash_retry_to_completion_is_legal():
    assert history_problems(history(S, P, R, (*RETRY, {"failed_state": "Crashed"}), P, R, CO),
                            pooled=True) == []


@pytest.mark.parametrize(("steps", "says"), [
    ((S, R, CO), "queued run leaves SCHEDULED only when a worker claims it"),
    ((S, P, R, CO, R), "terminal"),
    ((S, P, R, CO, (*RETRY, {}), P), "terminal"),
    ((S, P, R, P), "cannot go back"),
    ((S, CO), "has not started"),
    ((S, P, R, (*RETRY, {"failed_state": "Crashed"}), R), "claims it"),
    ((S, (*RETRY, {"failed_state": "Crashed"})), "no attempt"),
    ((S, P, R, CR, CO), "terminal"),
])
def test_illegal_histories_are_named(steps, says):
    problems = history_problems(history(*steps), pooled=True)
    assert problems and any(says in p for p in problems), problems


def entry(event: str, attempt: int, step: str, at: float, lease: str = "") -> Entry:
    return Entry(event, "r", attempt, lease or f"lease{attempt}", step, 1, 1, at)


def test_a_step_run_again_after_it_completed_is_a_duplicate():
    windows = {1: (0.0, 10.0), 2: (11.0, None)}
    ledger = [entry("step-begin", 1, "0", 1), entry("step-done", 1, "0", 2),
              entry("step-begin", 2, "0", 12)]
    problems, zombies = ledger_problems(ledger, final_run_count=2, windows=windows)
    assert problems == ["step 0 ran again in attempt 2 after attempt 1 had completed it"]
    assert zombies == 0


def test_rerunning_a_step_whose_result_was_lost_is_not_a_duplicate():
    windows = {1: (0.0, 10.0), 2: (11.0, None)}
    ledger = [entry("step-begin", 1, "0", 1), entry("step-begin", 2, "0", 12),
              entry("step-done", 2, "0", 13), entry("step-cached", 2, "1", 14)]
    assert ledger_problems(ledger, final_run_count=2, windows=windows) == ([], 0)


def test_two_leases_for_one_attempt_and_runs_after_the_end_are_found():
    windows = {1: (0.0, None)}
    ledger = [entry("flow-start", 1, "-", 1, "a"), entry("flow-start", 1, "-", 2, "b"),
              entry("flow-start", 2, "-", 3)]
    problems, _ = ledger_problems(ledger, final_run_count=1, windows=windows)
    assert any("2 leases" in p for p in problems)
    assert any("attempt 2 ran though the run ended at attempt 1" in p for p in problems)


def test_writes_after_the_attempt_ended_are_zombies_not_completions():
    hist = history(S, P, R, (*RETRY, {"failed_state": "Crashed"}), P, R, CO)
    windows = attempt_windows(hist)
    assert windows[1][1] is not None and windows[2][1] is not None
    ended = windows[1][1]
    ledger = [entry("step-done", 1, "5", ended + 1), entry("step-begin", 2, "5", ended + 2)]
    problems, zombies = ledger_problems(ledger, final_run_count=2, windows=windows)
    assert problems == [] and zombies == 1
