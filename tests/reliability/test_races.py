"""Scenario 6: 16 threads race complete / fail / crash / cancel / monitor verdicts / heartbeats
on the same runs, through the use cases on the SQLite adapters in this process. Each thread has
its own store and queue connections (as separate API Lambda containers would), all start at one
barrier. Per run exactly one transition ends the attempt (a terminal state, or AwaitingRetry when
a crash or failure wins with retries left), every history is legal, and the answers agree with
what is stored."""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from datetime import timedelta

import pytest

from sluice.exceptions import Conflict
from sluice.models import (
    ClaimRequest,
    Completed,
    Crashed,
    DeploymentCreate,
    DeploymentRunRequest,
    Failed,
    HeartbeatRequest,
    PoolCreate,
    Running,
    SetStateRequest,
    utcnow,
)
from sluice_functions import service
from sluice_functions.adapters.memory_metrics import InMemoryMetrics
from sluice_functions.adapters.sqlite import SqliteRunQueue, SqliteRunStore

from .driver import Figures, scaled
from .invariants import before_terminal, history_problems

pytestmark = [pytest.mark.reliability]
THREADS = 16
ACTIONS = ("complete", "complete", "fail", "crash", "cancel", "monitor", "heartbeat",
           "complete_again")


def _ends_attempt(state) -> bool:  # noqa: ANN001 - a State
    return state.is_terminal or (
        state.type.value == "SCHEDULED" and bool((state.details or {}).get("failed_state")))


def test_sixteen_threads_racing_on_the_same_runs_leave_one_winner(tmp_path, seed, rng):
    started = time.monotonic()
    store_path, queue_path = tmp_path / "store.db", tmp_path / "queue.db"
    store, queue = SqliteRunStore(store_path), SqliteRunQueue(queue_path)
    metrics = InMemoryMetrics()
    service.create_pool(PoolCreate(name="race"), store=store, queue=queue)
    deployments = {
        retries: service.create_deployment(DeploymentCreate(
            flow_name="race", name=f"retries-{retries}", entrypoint="f.py:race", pool="race",
            retries=retries), store=store, queue=queue)
        for retries in (0, 1)}
    n_runs = scaled(48, low=8)
    runs: dict[str, str] = {}  # run id -> lease
    for index in range(n_runs):
        deployment = deployments[index % 2]
        run = service.run_deployment(deployment.id, DeploymentRunRequest(), store=store,
                                     queue=queue, metrics=metrics)
        claim = service.claim_flow_run(run.id, ClaimRequest(worker="w", attempt=0),
                                       store=store, metrics=metrics)
        if rng.random() < 0.7:  # most race while Running, some while still Pending
            service.set_state(run.id, SetStateRequest(state=Running(), transition_id="go",
                                                      lease=claim.lease),
                              store=store, queue=queue, metrics=metrics)
        runs[run.id] = claim.lease
    # Each thread's plan: one action per run (from the seed). All threads take the runs in the
    # same order and meet at a barrier before each run, so 16 callers hit one run at once.
    order = list(runs)
    rng.shuffle(order)
    plans = [[(run_id, rng.choice(ACTIONS)) for run_id in order] for _ in range(THREADS)]
    barrier = threading.Barrier(THREADS)
    outcomes: dict[str, list[tuple[str, str, object]]] = defaultdict(list)
    lock = threading.Lock()
    errors: list[BaseException] = []

    def racer(number: int) -> None:
        own_store, own_queue = SqliteRunStore(store_path), SqliteRunQueue(queue_path)
        ports = {"store": own_store, "queue": own_queue, "metrics": metrics}
        try:
            for run_id, action in plans[number]:
                barrier.wait(30)
                lease = runs[run_id]
                tid = f"{action}-{number}"
                try:
                    if action in ("complete", "fail", "crash", "complete_again"):
                        state = {"complete": Completed, "complete_again": Completed,
                                 "fail": lambda: Failed("boom"),
                                 "crash": lambda: Crashed("worker saw the process die")}[action]()
                        if action == "complete_again":
                            tid = "complete-shared"  # several threads resend one transition
                        answer = service.set_state(run_id, SetStateRequest(
                            state=state, transition_id=tid, lease=lease), **ports)
                    elif action == "cancel":
                        answer = service.cancel_flow_run(run_id, store=own_store,
                                                         metrics=metrics)
                    elif action == "monitor":
                        # The monitor's verdict on the attempt it read (its lease), as
                        # monitoring.crash_silent_runs gives it.
                        answer = service.mark_crashed(
                            run_id, message="no heartbeat", **ports, lease=lease,
                            heartbeat_expired_before=utcnow() + timedelta(hours=1))
                    else:
                        answer = service.heartbeat(run_id, HeartbeatRequest(lease=lease),
                                                   store=own_store)
                    outcome: object = answer
                except Conflict as exc:  # a stale lease, or a run that kept changing: 409
                    outcome = exc
                with lock:
                    outcomes[run_id].append((action, tid, outcome))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            own_store.close()
            own_queue.close()

    threads = [threading.Thread(target=racer, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, f"seed {seed}: {errors[:3]}"
    assert not any(t.is_alive() for t in threads)

    problems: list[str] = []
    retried = crashes = 0
    for run_id in runs:
        history = service.list_state_history(run_id, store=store)
        stored = store.get_flow_run(run_id)
        as_dicts = [s.model_dump(mode="json") for s in history]
        problems += [f"{run_id} {p}" for p in history_problems(as_dicts, pooled=True)]
        # The claimed attempt ends exactly once. After a retry was granted (AwaitingRetry) the
        # new attempt is not claimed in this scenario, so the only later change a run may see
        # is a user's cancel of that waiting retry.
        endings = [s for s in history if _ends_attempt(s)]
        names = [s.name for s in endings]
        if not (len(endings) == 1 or names == ["AwaitingRetry", "Cancelled"]):
            problems.append(f"{run_id}: the attempt ended {len(endings)} times: "
                            f"{[s.name for s in history]}")
        winners = sorted((answer.state.name, tid) for action, tid, answer in outcomes[run_id]
                         if hasattr(answer, "status") and answer.status.value == "ACCEPT"
                         and action != "heartbeat" and _ends_attempt(answer.state)
                         and answer.reason is None)
        if sorted(n for n, _ in winners) != sorted(names):
            problems.append(f"{run_id}: callers were told they won {winners}, the history "
                            f"says {names}")
        if (stored.state.type, stored.state.name) != (history[-1].type, history[-1].name):
            problems.append(f"{run_id}: stored {stored.state.name}, history ends "
                            f"{history[-1].name}")
        if stored.lease is None and not before_terminal(as_dicts[-1]):
            retried += 1  # a crash or failure won with a retry left: the lease is gone
        crashes += sum(1 for a, *_ in outcomes[run_id] if a in ("crash", "monitor"))
    answers = Counter(type(o).__name__ if isinstance(o, Exception) else o.status.value
                      for results in outcomes.values() for _, _, o in results
                      if not hasattr(o, "cancel_requested"))
    store.close()
    queue.close()
    Figures("6 16 threads racing", seed, runs=n_runs, workers=THREADS,
            crashes_injected=crashes, retries=retried, lost=0,
            duplicated=sum("callers were told" in p or "ended " in p for p in problems),
            seconds=time.monotonic() - started,
            notes={"operations": THREADS * n_runs, "answers": dict(answers)}).save()
    assert not problems, f"seed {seed}:\n  " + "\n  ".join(problems[:30])
