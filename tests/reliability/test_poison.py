"""Scenario 5: a poison flow kills its own process on every attempt (os._exit, or SIGKILL of
itself). Its attempts are bounded by the deployment's retries, the run ends Crashed with the
reason, its messages are gone from the queue, and the worker stays healthy: the same worker
process runs a normal flow afterwards."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from e2e.harness import wait_for

from .driver import Figures, Ledger, StuckWatch, chaos_runs, wait_all_terminal
from .invariants import check_runs

pytestmark = [pytest.mark.reliability, pytest.mark.e2e]
RETRIES = 2


def test_poison_flows_end_crashed_after_bounded_attempts(installation, tmp_path, seed, rng):
    started = time.monotonic()
    inst = installation
    poison = inst.deploy("poison_flow", "poison", "--retries", str(RETRIES))
    normal = inst.deploy("chaos_flow", "normal")
    ledger = Ledger(tmp_path / "ledger")
    hows = ["exit", "sigkill"] * max(1, chaos_runs(12) // 12)
    rng.shuffle(hows)
    worker = inst.start_worker(name="sturdy", limit=2)
    pid = worker.popen.pid
    runs = {inst.trigger(poison, ledger=str(ledger), how=how): how for how in hows}
    with StuckWatch(inst.url, inst.token, inst.heartbeat_timeout) as watch:
        wait_all_terminal(inst, list(runs), timeout=60 + 10 * len(runs))
    assert not watch.stuck, watch.stuck
    # The same worker process then runs a normal flow.
    after = inst.trigger(normal, ledger=str(ledger), steps=2, step_seconds=0.05)
    final = inst.wait_terminal(after, 60)
    assert final["state"]["type"] == "COMPLETED", final
    assert worker.popen.poll() is None and worker.popen.pid == pid, worker.output()
    with inst.api() as http:
        wait_for(lambda: http.get("/pools/default").json()["queue_depth"] == 0, 30,
                 "the poison messages to be gone")
        pool = http.get("/pools/default").json()
    online = [w for w in pool["workers"] if w["name"] == "sturdy" and w["online"]]
    with inst.reader() as api:
        findings = check_runs(api, list(runs), ledger=ledger, expect={"CRASHED"})
        clean = check_runs(api, [after], ledger=ledger)
    attempts = Counter(e.run_id for e in ledger.entries() if e.event == "flow-start")
    Figures("5 poison flow", seed, runs=len(runs) + 1, workers=1,
            crashes_injected=sum(attempts[r] for r in runs), retries=findings.retries,
            lost=len(findings.lost) + len(clean.lost),
            duplicated=len(findings.duplicated) + len(clean.duplicated),
            seconds=time.monotonic() - started,
            notes={"attempts_per_poison_run": sorted(attempts[r] for r in runs),
                   "dead_lettered": pool["dlq_depth"]}).save()
    findings.assert_clean(seed)
    clean.assert_clean(seed)
    for run_id, how in runs.items():
        run = findings.runs_by_id[run_id]
        # Bounded: the first attempt and RETRIES more, never another one.
        assert run["run_count"] == RETRIES + 1 and attempts[run_id] == RETRIES + 1, (how, run)
        assert findings.crashes[run_id] and len(findings.crashes[run_id]) == RETRIES + 1
        code = 3 if how == "exit" else -9
        assert f"exited with code {code}" in run["state"]["message"], run["state"]
        assert run["state"]["details"]["exit_code"] == code
    assert online, pool["workers"]
    assert pool["dlq_depth"] == 0  # every message was handled (and deleted) by the worker
