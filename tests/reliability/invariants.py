"""The one invariant checker of the reliability scenarios.

It reads the store back through the HTTP API (runs, state histories) and the flows' ledger
(tests/reliability/project/flows.py) and finds:

* lost runs: a created run that is not terminal, or did not end in an expected state;
* illegal histories: each consecutive pair of states is checked against the server's rule table
  (`sluice_functions.orchestration.rules.TRANSITION_RULES` through `refusal`) with the mover that
  can have made it. Server conversions documented in `orchestration/transitions.py` are
  undone before the check: an AwaitingRetry carrying `details.failed_state` is the server's
  answer to a proposed Failed/Crashed with retries left, so the pair checked is
  (previous state, the proposed failure) and the run's lease is gone afterwards; a Pending after
  Scheduled is a claim (`Mover.CLAIM`, the lease is issued); Scheduled after a terminal state is
  only legal as a user retry (`Mover.RETRY`), which no scenario makes unless it says so.
  Also: the last history entry is the run's state, timestamps do not go back (beyond the 2 s
  two racing proposers' clocks may differ by), a terminal entry
  only ever comes last, and run_count equals the number of claims;
* stuck runs: a run still Pending/Running/Cancelling whose last sign of life is older than the
  heartbeat bound (the monitor must have crashed it);
* double execution, from the ledger: a step that begins again after it completed (its result
  was persisted, `step-done`), in the same attempt or a later one; an attempt number run under
  two leases; an attempt beyond the run's final run_count. Entries an attempt writes after the
  server ended that attempt (a partitioned "zombie" worker, scenario 3) are counted apart as
  `zombie` and never count as completions.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sluice.models import StateType
from sluice_functions.orchestration.rules import Mover, refusal

from .driver import TERMINAL, ApiReader, Entry, Ledger

_FAILED_STATE_TYPES = {"Crashed": StateType.CRASHED, "Failed": StateType.FAILED,
                       "TimedOut": StateType.FAILED}
_NON_CLAIM_MOVERS = (Mover.REPORT, Mover.SERVER)


@dataclass
class Findings:
    runs: int = 0
    lost: list[str] = field(default_factory=list)
    illegal: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    zombie: dict[str, int] = field(default_factory=dict)
    #: Retries the server granted (AwaitingRetry after a failure), and those after a crash.
    retries: int = 0
    crash_retries: int = 0
    #: The attempts that ended Crashed (retried or final) per run, with their times.
    crashes: dict[str, list[float]] = field(default_factory=dict)
    runs_by_id: dict[str, dict[str, Any]] = field(default_factory=dict)
    histories: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def problems(self) -> list[str]:
        return ([f"lost: {p}" for p in self.lost] + [f"illegal: {p}" for p in self.illegal]
                + [f"stuck: {p}" for p in self.stuck]
                + [f"duplicated: {p}" for p in self.duplicated])

    def assert_clean(self, seed: int) -> None:
        problems = self.problems()
        assert not problems, (f"seed {seed}: {len(problems)} invariant violation(s):\n  "
                              + "\n  ".join(problems[:40]))


def _ts(state: dict[str, Any]) -> float:
    return datetime.fromisoformat(state["timestamp"]).timestamp()


def history_problems(history: list[dict[str, Any]], *, pooled: bool,
                     allow_user_retry: bool = False) -> list[str]:
    """Why this state history could not have come out of the rule table (empty: it could)."""
    problems: list[str] = []
    if not history:
        return ["empty history"]
    first = StateType(history[0]["type"])
    if first not in (StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING):
        problems.append(f"created {first.value}")
    lease_held = not pooled or first is not StateType.SCHEDULED
    for index, (before, after) in enumerate(zip(history, history[1:]), start=1):
        from_type, to_type = StateType(before["type"]), StateType(after["type"])
        details = after.get("details") or {}
        movers: tuple[Mover, ...] = _NON_CLAIM_MOVERS
        lease_after = lease_held
        if to_type is StateType.SCHEDULED and details.get("failed_state") in _FAILED_STATE_TYPES:
            # The server's retry: it was proposed as the failure it names (transitions.py,
            # `_should_retry`/`_awaiting_retry`), which ends the attempt.
            to_type = _FAILED_STATE_TYPES[details["failed_state"]]
            lease_after = False
            ends_attempt = from_type in (StateType.PENDING, StateType.RUNNING,
                                         StateType.PAUSED) or (
                from_type is StateType.SCHEDULED and lease_held)
            if not ends_attempt:
                problems.append(f"#{index}: a retry after {before['name']}, which is no attempt")
        elif from_type is StateType.SCHEDULED and after["name"] == "Pending":
            movers, lease_after = (Mover.CLAIM,), True
        elif before_terminal(before) and to_type is StateType.SCHEDULED:
            movers, lease_after = ((Mover.RETRY,) if allow_user_retry else ()), False
        elif to_type is StateType.SCHEDULED and after["name"] == "Late":
            pass  # the monitor renames a waiting run; same type, same message and lease
        needs_claim = pooled and not lease_held
        reasons = [refusal(from_type, to_type, needs_claim=needs_claim, mover=m) for m in movers]
        if not movers or all(reasons):
            why = next((r for r in reasons if r), "no mover may make it")
            problems.append(f"#{index}: {before['name']} -> {after['name']} ({why})")
        lease_held = lease_after
        # States carry their proposer's clock: racing proposers may land a few ms out of order.
        if _ts(after) + 2.0 < _ts(before):
            problems.append(f"#{index}: time goes back ({before['timestamp']} -> "
                            f"{after['timestamp']})")
    terminal_at = [i for i, s in enumerate(history) if s["type"] in TERMINAL]
    if terminal_at and not allow_user_retry and terminal_at != [len(history) - 1]:
        problems.append(f"terminal states at positions {terminal_at} of {len(history)}")
    return problems


def before_terminal(state: dict[str, Any]) -> bool:
    return state["type"] in TERMINAL


def attempt_windows(history: list[dict[str, Any]]) -> dict[int, tuple[float, float | None]]:
    """Attempt number -> (claimed at, ended at or None) from a pooled run's history."""
    windows: dict[int, tuple[float, float | None]] = {}
    attempt = 0
    for state in history:
        if state["name"] == "Pending":
            attempt += 1
            windows[attempt] = (_ts(state), None)
        elif attempt and windows[attempt][1] is None and (
                state["type"] in TERMINAL or state["type"] == "SCHEDULED"
                and (state.get("details") or {}).get("failed_state")):
            windows[attempt] = (windows[attempt][0], _ts(state))
    return windows


def ledger_problems(entries: list[Entry], *, final_run_count: int,
                    windows: dict[int, tuple[float, float | None]]
                    ) -> tuple[list[str], int]:
    """(double executions, zombie entries) of one run's ledger entries."""
    problems: list[str] = []
    zombies = 0
    done: dict[str, tuple[int, str]] = {}
    leases: dict[int, set[str]] = defaultdict(set)
    for entry in sorted(entries, key=lambda e: e.at):
        ended = windows.get(entry.attempt, (0.0, None))[1]
        if ended is not None and entry.at > ended + 0.05:
            zombies += 1  # the attempt was over for the control plane: a stale process
            continue
        leases[entry.attempt].add(entry.lease)
        if entry.attempt > final_run_count:
            problems.append(f"attempt {entry.attempt} ran though the run ended at attempt "
                            f"{final_run_count}")
        if entry.event == "step-begin" and entry.step in done:
            attempt, lease = done[entry.step]
            where = "in the same attempt" if lease == entry.lease else f"after attempt {attempt}"
            problems.append(f"step {entry.step} ran again in attempt {entry.attempt} {where} "
                            "had completed it")
        elif entry.event == "step-done":
            done.setdefault(entry.step, (entry.attempt, entry.lease))
    for attempt, names in leases.items():
        if len(names) > 1:
            problems.append(f"attempt {attempt} ran under {len(names)} leases")
    return problems, zombies


def check_runs(api: ApiReader, run_ids: list[str], *, ledger: Ledger | None = None,
               expect: set[str] | frozenset[str] = frozenset({"COMPLETED"}),
               heartbeat_bound: float | None = None, pooled: bool = True,
               allow_user_retry: bool = False) -> Findings:
    """Check every run of a scenario (see the module docstring)."""
    import time

    findings = Findings(runs=len(run_ids))
    by_run = ledger.by_run() if ledger is not None else {}
    for run_id in run_ids:
        run = api.run(run_id)
        history = api.history(run_id)
        findings.runs_by_id[run_id], findings.histories[run_id] = run, history
        state = run["state"]
        if state["type"] not in TERMINAL:
            findings.lost.append(f"{run_id} is still {state['name']}")
            if heartbeat_bound is not None and state["type"] in ("PENDING", "RUNNING",
                                                                  "CANCELLING"):
                life = run.get("heartbeat_at") or run.get("start_time") or run["updated"]
                age = time.time() - datetime.fromisoformat(life).timestamp()
                if age > heartbeat_bound:
                    findings.stuck.append(f"{run_id} {state['name']} silent for {age:.1f} s")
        elif state["type"] not in expect:
            findings.lost.append(f"{run_id} ended {state['name']}: {state.get('message')}")
        for problem in history_problems(history, pooled=pooled,
                                        allow_user_retry=allow_user_retry):
            findings.illegal.append(f"{run_id} {problem}")
        if history and (history[-1]["type"], history[-1]["name"]) != (state["type"],
                                                                      state["name"]):
            findings.illegal.append(f"{run_id} history ends {history[-1]['name']}, the run is "
                                    f"{state['name']}")
        claims = sum(1 for s in history if s["name"] == "Pending")
        if pooled and claims != run["run_count"]:
            findings.illegal.append(f"{run_id} has run_count {run['run_count']} after "
                                    f"{claims} claims")
        for entry in history:
            failed = (entry.get("details") or {}).get("failed_state")
            if entry["type"] == "SCHEDULED" and failed:
                findings.retries += 1
                findings.crash_retries += failed == "Crashed"
            if failed == "Crashed" or entry["type"] == "CRASHED":
                findings.crashes.setdefault(run_id, []).append(_ts(entry))
        if ledger is not None:
            problems, zombies = ledger_problems(
                by_run.get(run_id, []), final_run_count=run["run_count"],
                windows=attempt_windows(history))
            findings.duplicated += [f"{run_id} {p}" for p in problems]
            if zombies:
                findings.zombie[run_id] = zombies
    return findings
