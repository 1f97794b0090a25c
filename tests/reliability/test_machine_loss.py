"""Scenario 1: workers' machines are lost (SIGKILL of the worker and every process it started) at
random points of N runs; every run still ends Completed through crash retries, none is stuck,
no completed step runs twice.

The points: after the worker received a run's message (nothing claimed), after it claimed the
run (a lease, no process), in the middle of a task, and after the last task before the final
state was reported. The first two last microseconds, so the worker kills itself there through
its test-only fault hook (`sluice_worker.faults`); the other two are hit from outside by watching
the flows' ledger. Each worker incarnation gets one planned fault from the seeded driver; a lost
worker is replaced at once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest

from .driver import (
    HEARTBEAT_TIMEOUT,
    TERMINAL,
    VISIBILITY_TIMEOUT,
    Figures,
    Ledger,
    StuckWatch,
    chaos_runs,
    chaos_workers,
    kill_machine,
    worker_fault_line,
)
from .invariants import check_runs

pytestmark = [pytest.mark.reliability, pytest.mark.e2e]

POINTS = ("after_receive", "after_claim", "mid_task", "before_report")
STEPS, STEP_SECONDS, LINGER = 3, 0.4, 1.0


@dataclass
class Plan:
    point: str
    nth: int  # the worker's n-th message (hook points) or n-th run (ledger points)
    step: int = 0  # mid_task: which task


@dataclass(frozen=True)
class Kill:
    point: str
    run_id: str
    at: float
    worker: str


def test_machine_losses_at_random_points_end_completed(installation, tmp_path, seed, rng):
    started = time.monotonic()
    n_runs, n_workers = chaos_runs(12), chaos_workers(3)
    n_faults = max(len(POINTS), round(n_runs * 0.4))
    inst = installation
    ref = inst.deploy("chaos_flow", "chaos", "--retries", "4")
    ledger = Ledger(tmp_path / "ledger")
    params = {"ledger": str(ledger), "steps": STEPS, "step_seconds": STEP_SECONDS,
              "linger": LINGER}
    runs = [inst.trigger(ref, **params) for _ in range(n_runs)]

    # The seeded plan: every point once first (nth=1, so each surely fires), then random ones.
    first = list(POINTS)
    rng.shuffle(first)
    plans = [Plan(p, 1, rng.randrange(STEPS)) for p in first] + [
        Plan(rng.choice(POINTS), rng.choice([1, 2]), rng.randrange(STEPS))
        for _ in range(n_faults - len(POINTS))]
    print(f"plan: {[(p.point, p.nth, p.step) for p in plans]}")
    pending_plans = list(plans)
    live: dict[str, tuple[object, Plan | None]] = {}
    kills: list[Kill] = []
    counter = iter(range(10**6))

    def start_one() -> None:
        plan = pending_plans.pop(0) if pending_plans else None
        name = f"w{next(counter)}"
        env = {"SLUICE_WORKER_FAULT": f"{plan.point}:{plan.nth}"} if plan and plan.point in (
            "after_receive", "after_claim") else {}
        live[name] = (inst.start_worker(name=name, env=env), plan)

    for _ in range(n_workers):
        start_one()

    def ledger_trigger(worker, plan: Plan, entries) -> str | None:
        """The run this worker's planned outside kill is due for, if it is due now."""
        pid = worker.popen.pid
        mine = [e for e in entries if e.ppid == pid]
        order: list[tuple[str, int]] = []
        for e in mine:
            if e.event == "flow-start" and (e.run_id, e.attempt) not in order:
                order.append((e.run_id, e.attempt))
        if len(order) < plan.nth:
            return None
        run_id, attempt = order[plan.nth - 1]
        for e in mine:
            if (e.run_id, e.attempt) != (run_id, attempt):
                continue
            if plan.point == "mid_task" and e.event == "step-begin" and e.step == str(plan.step):
                return run_id
            if plan.point == "before_report" and e.event == "flow-end":
                return run_id
        return None

    def drive() -> None:
        entries = ledger.entries()
        for name, (worker, plan) in list(live.items()):
            if worker.popen.poll() is not None:  # the worker's own fault hook fired
                fault = worker_fault_line(worker)
                assert fault is not None, f"worker {name} died by itself:\n{worker.output()}"
                point, run_id, at = fault
                kills.append(Kill(point, run_id, at, name))
                del live[name]
                start_one()
            elif plan is not None and plan.point in ("mid_task", "before_report"):
                run_id = ledger_trigger(worker, plan, entries)
                if run_id is not None:
                    at = kill_machine(worker, ledger)
                    kills.append(Kill(plan.point, run_id, at, name))
                    del live[name]
                    start_one()

    deadline = time.monotonic() + 60 + 6 * n_runs
    extra = 0
    with StuckWatch(inst.url, inst.token, HEARTBEAT_TIMEOUT) as watch, inst.reader() as api:
        next_check = 0.0
        while time.monotonic() < deadline:
            drive()
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + 1.0
                states = api.states(runs)
                if all(s in TERMINAL for s in states.values()):
                    covered = {k.point for k in kills}
                    if covered >= set(POINTS) or extra >= 4:
                        break
                    # A planned fault is still waiting for work: give its worker a run.
                    runs.append(inst.trigger(ref, **params))
                    extra += 1
            time.sleep(0.05)
        else:
            raise AssertionError(f"seed {seed}: runs still open: "
                                 f"{[r for r, s in api.states(runs).items() if s not in TERMINAL]}")
        # Stale messages of crashed attempts come back after their visibility timeout and are
        # dropped (their claims name an old attempt): the queue ends empty, nothing dead-lettered.
        queue_drained = _wait_queue_empty(inst, 3 * VISIBILITY_TIMEOUT + 10, drive)
        findings = check_runs(api, runs, ledger=ledger,
                              heartbeat_bound=HEARTBEAT_TIMEOUT + 4)
    for name, (worker, _) in live.items():
        assert worker.popen.poll() is None, f"worker {name} died:\n{worker.output()}"

    latencies = _detection_latencies(kills, findings)
    detected = [v for k, v in latencies.items() if k.point != "after_receive"]
    reclaimed = [v for k, v in latencies.items() if k.point == "after_receive"]
    figures = Figures("1 machine loss (SIGKILL)", seed, runs=len(runs), workers=n_workers,
                      crashes_injected=len(kills), retries=findings.retries,
                      lost=len(findings.lost), duplicated=len(findings.duplicated),
                      max_detection_latency=max(detected, default=None),
                      seconds=time.monotonic() - started,
                      notes={"points": {p: sum(k.point == p for k in kills) for p in POINTS},
                             "stuck": len(watch.stuck), "zombie_entries":
                             sum(findings.zombie.values()),
                             "max_reclaim_after_receive_s": round(max(reclaimed, default=0), 1)})
    figures.save()
    findings.assert_clean(seed)
    assert not watch.stuck, f"seed {seed}: runs silent past the heartbeat bound: {watch.stuck}"
    assert watch.samples > 0
    assert {k.point for k in kills} == set(POINTS), f"seed {seed}: kills {kills}"
    # Killed machines leave nothing behind: no flow process wrote after its attempt ended.
    assert not findings.zombie, f"seed {seed}: stale processes kept running: {findings.zombie}"
    # Every attempt that was killed holding its run was found Crashed and retried, within the
    # heartbeat bound (the monitor ticks every 0.5 s). (A message that was only received came
    # back after its visibility timeout and waited its turn in the queue: no bound on that,
    # but its run completed like every other.)
    for kill in kills:
        if kill.point != "after_receive":
            assert kill in latencies, f"seed {seed}: the kill {kill} was never detected"
            assert latencies[kill] < HEARTBEAT_TIMEOUT + 4, (seed, kill, latencies[kill])
    assert findings.crash_retries >= sum(k.point != "after_receive" for k in kills)
    assert queue_drained, f"seed {seed}: the pool's queue did not drain"


def _wait_queue_empty(inst, timeout: float, drive) -> bool:
    deadline = time.monotonic() + timeout
    with inst.api() as api:
        while time.monotonic() < deadline:
            drive()
            pool = api.get("/pools/default").json()
            if pool["queue_depth"] == 0 and pool["dlq_depth"] == 0:
                return True
            time.sleep(0.3)
    return False


def _detection_latencies(kills: list[Kill], findings) -> dict[Kill, float]:  # noqa: ANN001
    """Seconds from each kill to the control plane acting on it: the attempt recorded Crashed
    (claimed runs), or the run claimed again (a message that was only received)."""
    from datetime import datetime

    latencies = {}
    for kill in kills:
        history = findings.histories.get(kill.run_id, [])
        for state in history:
            at = datetime.fromisoformat(state["timestamp"]).timestamp()
            if at < kill.at:
                continue
            crashed = (state.get("details") or {}).get("failed_state") == "Crashed" or \
                state["type"] == "CRASHED"
            if (kill.point == "after_receive" and state["name"] == "Pending") or \
                    (kill.point != "after_receive" and crashed):
                latencies[kill] = at - kill.at
                break
    return latencies
