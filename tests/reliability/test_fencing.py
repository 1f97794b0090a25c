"""Scenario 9: a run's code runs at most once at a time, and nothing of a run stays stuck or
outlives it (issue 12: leases that fence).

Each scenario deploys `fenced_flow` (tests/reliability/project/flows.py), whose steps write a
`tick` to the ledger every 0.05 s, so the ledger shows exactly when each attempt was active.
The check everywhere: **no two attempts of a run were ever active at the same time** (overlap 0),
every run ends, no run is left live past the lease plus its margin plus a tick.

* 9a: SIGKILL of the worker alone (its flow processes live in their own sessions and survive
  it): they see their lease pipe close and stop themselves at once; the monitor crashes the
  attempt after the lease and its margin, another worker retries it.
* 9b: SIGSTOP of the worker past the lease, then SIGCONT: the flow processes stop themselves at
  their deadline; the retry runs elsewhere; the woken worker's late writes are refused.
* 9c: SIGSTOP of a flow process past the lease, then SIGCONT: its worker kept renewing the lease,
  so the run goes on in the same attempt and completes.
* 9d: a flow run as a plain script, SIGKILLed: its run ends Crashed, saying a script died.
* 9e: a flow that starts a process outside its process group (setsid): when the run ends that
  process is gone too.
* 9f: a worker that asks to beat every 10 s, against a control plane whose lease is 3 s: it
  beats as the control plane says, and its run (longer than the lease) is never crashed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from e2e.harness import wait_for

from .driver import (
    HEARTBEAT_TIMEOUT,
    TICK,
    Figures,
    Ledger,
    alive,
    chaos_runs,
    wait_all_terminal,
)
from .fencing import crash_times, last_activity, leases_of, overlap_seconds, spread, windows

pytestmark = [pytest.mark.reliability, pytest.mark.e2e]

#: The lease's margin in the scenarios (orchestration.leases: max(2 s, 10 %)).
MARGIN = 2.0
#: A run live this long after its attempt's last sign of life is stuck.
STUCK_BOUND = HEARTBEAT_TIMEOUT + MARGIN + 2 * TICK + 2.0


def _runs(inst, ledger: Ledger, count: int, **params) -> tuple[str, list[str]]:
    ref = inst.deploy("fenced_flow", "fenced", "--retries", "3")
    runs = [inst.trigger(ref, ledger=str(ledger), **params) for _ in range(count)]
    return ref, runs


def _active(ledger: Ledger, runs: list[str], worker_pid: int) -> bool:
    """Every run has ticked in a flow process of this worker."""
    ticking = {e.run_id for e in ledger.entries() if e.event == "tick" and e.ppid == worker_pid}
    return set(runs) <= ticking


def _finish(inst, ledger: Ledger, runs: list[str], figures: Figures, fault_at: dict[str, float],
            *, started: float, expect_crash: bool = True) -> None:
    wait_all_terminal(inst, runs, 180)
    total, lines = overlap_seconds(ledger)
    detections, fenced_after = [], []
    with inst.reader() as api:
        states = {run_id: api.run(run_id) for run_id in runs}
        # Nothing stays stuck inside a finished run: no task run of any attempt is left open.
        open_task_runs = [f"{run_id}: {t['name']} {t['state']['type']}" for run_id in runs
                          for t in api.task_runs(run_id)
                          if t["state"]["type"] not in ("COMPLETED", "FAILED", "CANCELLED",
                                                        "CRASHED")]
        for run_id in runs:
            at = fault_at.get(run_id)
            crashes = crash_times(api, run_id)
            if at is not None and crashes and expect_crash:
                detections.append(min(c for c in crashes if c >= at - 1) - at)
            leases = leases_of(ledger, run_id)
            if at is not None and leases:
                fenced_after.append(max(0.0, last_activity(ledger, run_id, leases[0]) - at))
    not_completed = [r for r, run in states.items() if run["state"]["type"] != "COMPLETED"]
    figures.runs, figures.lost = len(runs), len(not_completed)
    figures.duplicated = len(lines)
    figures.retries = sum(max(0, run["run_count"] - 1) for run in states.values())
    figures.max_detection_latency = max(detections) if detections else None
    figures.notes.update({
        "overlap seconds": round(total, 3),
        "detection p50 s": spread(detections)["p50"],
        "old attempt active after the fault, max s": spread(fenced_after)["max"],
    })
    figures.notes["task runs left open"] = len(open_task_runs)
    figures.seconds = time.monotonic() - started
    figures.save()
    assert not lines, lines
    assert not open_task_runs, open_task_runs
    assert not not_completed, {r: states[r]["state"] for r in not_completed}


def test_9a_sigkill_of_the_worker_alone_fences_its_flow_processes(installation, tmp_path, seed):
    started = time.monotonic()
    inst, ledger = installation, Ledger(tmp_path / "ledger")
    n = chaos_runs(2) if chaos_runs(2) <= 20 else 20
    _, runs = _runs(inst, ledger, n, steps=3, step_seconds=2.0)
    doomed = inst.start_worker(name="doomed", limit=n)
    wait_for(lambda: _active(ledger, runs, doomed.popen.pid), 60, "every run to tick")
    killed_at = time.time()
    os.kill(doomed.popen.pid, signal.SIGKILL)  # the worker only: its flow processes survive it
    doomed.popen.wait(10)
    flow_pids = {e.pid for e in ledger.entries() if e.ppid == doomed.popen.pid}
    wait_for(lambda: not any(alive(pid) for pid in flow_pids), 10,
             "the orphaned flow processes to stop themselves")
    orphans_gone = time.time() - killed_at
    inst.start_worker(name="heir", limit=n)
    figures = Figures("9a worker SIGKILLed alone", seed, workers=2, crashes_injected=1)
    figures.notes["orphans stopped after s"] = round(orphans_gone, 2)
    _finish(inst, ledger, runs, figures, {r: killed_at for r in runs}, started=started)


def test_9b_sigstop_of_the_worker_past_the_lease(installation, tmp_path, seed):
    started = time.monotonic()
    inst, ledger = installation, Ledger(tmp_path / "ledger")
    n = min(chaos_runs(2), 20)
    _, runs = _runs(inst, ledger, n, steps=3, step_seconds=2.0)
    frozen = inst.start_worker(name="frozen", limit=n)
    wait_for(lambda: _active(ledger, runs, frozen.popen.pid), 60, "every run to tick")
    stopped_at = time.time()
    os.kill(frozen.popen.pid, signal.SIGSTOP)
    inst.start_worker(name="other", limit=n)
    # Past the lease, its margin and a few ticks: the runs are retried by the other worker.
    wait_for(lambda: all(len(leases_of(ledger, r)) >= 2 for r in runs), 60,
             "the runs to be retried elsewhere")
    time.sleep(1.0)
    os.kill(frozen.popen.pid, signal.SIGCONT)
    figures = Figures("9b worker SIGSTOPped past the lease", seed, workers=2, crashes_injected=1)
    _finish(inst, ledger, runs, figures, {r: stopped_at for r in runs}, started=started)
    # The woken worker goes on serving: its old runs' writes were refused, nothing else broke.
    assert frozen.popen.poll() is None


def test_9c_sigstop_of_a_flow_process_past_the_lease(installation, tmp_path, seed):
    started = time.monotonic()
    inst, ledger = installation, Ledger(tmp_path / "ledger")
    _, runs = _runs(inst, ledger, 1, steps=2, step_seconds=1.5)
    worker = inst.start_worker(name="steady")
    wait_for(lambda: _active(ledger, runs, worker.popen.pid), 60, "the run to tick")
    flow_pid = next(e.pid for e in ledger.entries() if e.ppid == worker.popen.pid)
    os.kill(flow_pid, signal.SIGSTOP)
    time.sleep(HEARTBEAT_TIMEOUT + MARGIN + 2.0)
    os.kill(flow_pid, signal.SIGCONT)
    figures = Figures("9c flow process SIGSTOPped past the lease", seed, workers=1,
                      crashes_injected=1)
    _finish(inst, ledger, runs, figures, {}, started=started, expect_crash=False)
    with inst.reader() as api:
        run = api.run(runs[0])
    # The worker renewed the lease all along: one attempt, never crashed.
    assert run["run_count"] == 1, run


SCRIPT = """
import sys
sys.path.insert(0, {project!r})
from flows import fenced_flow
fenced_flow(ledger={ledger!r}, steps=20, step_seconds=1.0)
"""


def test_9d_a_killed_script_run_ends_crashed(installation, tmp_path, seed):
    started = time.monotonic()
    inst, ledger = installation, Ledger(tmp_path / "ledger")
    script = tmp_path / "script.py"
    project = Path(__file__).parent / "project"
    script.write_text(SCRIPT.format(project=str(project), ledger=str(ledger)))
    process = subprocess.Popen([sys.executable, str(script)], env=inst.env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: any(e.event == "tick" for e in ledger.entries()), 60, "the script to tick")
    run_id = next(e.run_id for e in ledger.entries() if e.event == "tick")
    killed_at = time.time()
    process.kill()
    process.wait(10)
    with inst.reader() as api:
        wait_for(lambda: api.run(run_id)["state"]["type"] == "CRASHED", STUCK_BOUND + 10,
                 "the script's run to be crashed")
        run = api.run(run_id)
        detection = crash_times(api, run_id)[0] - killed_at
    figures = Figures("9d script run SIGKILLed", seed, runs=1, workers=0, crashes_injected=1,
                      max_detection_latency=detection, seconds=time.monotonic() - started)
    figures.notes["message"] = run["state"]["message"][:80]
    figures.save()
    assert "script" in run["state"]["message"], run["state"]
    assert detection <= STUCK_BOUND, detection


def test_9e_nothing_a_run_started_outlives_it(installation, tmp_path, seed):
    started = time.monotonic()
    inst, ledger = installation, Ledger(tmp_path / "ledger")
    _, runs = _runs(inst, ledger, 1, steps=1, step_seconds=0.5, child_seconds=60.0)
    inst.start_worker(name="parent")
    wait_all_terminal(inst, runs, 60)
    with inst.reader() as api:
        run = api.run(runs[0])
    ended = run["end_time"]
    children = {e.pid for e in ledger.entries() if e.event == "child"}
    assert children, "the flow started no child"
    wait_for(lambda: not any(alive(pid) for pid in children), 10, "the run's child to be gone")
    from datetime import datetime

    end = datetime.fromisoformat(ended).timestamp()
    last_child = max(e.at for e in ledger.entries() if e.event == "child")
    figures = Figures("9e process that left the group", seed, runs=1, workers=1,
                      crashes_injected=len(children),
                      seconds=time.monotonic() - started)
    figures.notes["child active after the run ended, s"] = round(max(0.0, last_child - end), 2)
    figures.save()
    assert run["state"]["type"] == "COMPLETED", run["state"]
    assert last_child - end < 2.0


def test_9f_a_worker_beats_as_often_as_the_control_plane_asks(installation, tmp_path, seed):
    started = time.monotonic()
    inst, ledger = installation, Ledger(tmp_path / "ledger")
    # The run lasts three leases; the worker would beat every 10 s on its own.
    _, runs = _runs(inst, ledger, 1, steps=3, step_seconds=HEARTBEAT_TIMEOUT)
    inst.start_worker("--heartbeat-interval", "10", "--visibility-timeout", "30", name="slow")
    figures = Figures("9f worker asks for 10 s beats", seed, workers=1)
    _finish(inst, ledger, runs, figures, {}, started=started, expect_crash=False)
    with inst.reader() as api:
        run = api.run(runs[0])
    assert run["run_count"] == 1, run
    assert len(windows(ledger.entries())[runs[0]]) == 1


def test_9g_writes_without_the_lease_are_refused_at_every_route(installation, tmp_path, seed):
    """Every route that writes to a run, called without the run's lease (none, or a wrong one)
    for a run in each kind of state: refused with a 4xx that says why, and nothing changes."""
    import uuid

    started = time.monotonic()
    inst = installation
    ref = inst.deploy("fenced_flow", "fenced")
    now = "2026-01-01T00:00:00+00:00"
    answers: list[tuple[str, int]] = []

    def state_body(kind: str, lease: str | None) -> dict:
        body = {"state": {"type": kind, "timestamp": now}, "transition_id": uuid.uuid4().hex}
        if kind == "SCHEDULED":
            body["state"]["scheduled_time"] = "2999-01-01T00:00:00+00:00"
        return body | ({"lease": lease} if lease else {})

    with inst.api() as api:
        def call(path: str, body: dict) -> int:
            answer = api.post(path, json=body)
            answers.append((path, answer.status_code))
            assert answer.status_code < 500, (path, answer.text)
            if answer.status_code >= 400:
                assert answer.json().get("message"), answer.text  # it says why
            return answer.status_code

        queued = inst.trigger(ref, ledger=str(tmp_path / "ledger"))
        running = inst.trigger(ref, ledger=str(tmp_path / "ledger"))
        finished = inst.trigger(ref, ledger=str(tmp_path / "ledger"))
        leases = {}
        for run_id in (running, finished):
            claim = api.post(f"/flow-runs/{run_id}/claim", json={"worker": "probe"}).json()
            leases[run_id] = claim["lease"]
            assert claim["lease_seconds"] == HEARTBEAT_TIMEOUT, claim
            assert api.post(f"/flow-runs/{run_id}/state", json=state_body(
                "RUNNING", claim["lease"])).json()["status"] == "ACCEPT"
        assert api.post(f"/flow-runs/{finished}/state", json=state_body(
            "COMPLETED", leases[finished])).json()["status"] == "ACCEPT"
        before = {run_id: api.get(f"/flow-runs/{run_id}").json()
                  for run_id in (queued, running, finished)}
        for run_id in (queued, running, finished):
            for lease in (None, "not-the-lease-0123456789"):
                for kind in ("SCHEDULED", "PENDING", "RUNNING", "PAUSED", "CANCELLING",
                             "COMPLETED", "FAILED", "CANCELLED", "CRASHED"):
                    assert call(f"/flow-runs/{run_id}/state", state_body(kind, lease)) == 409
                events = {"logs": [{"id": uuid.uuid4().hex, "flow_run_id": run_id,
                                    "timestamp": now, "message": "forged"}],
                          "task_runs": [{"id": uuid.uuid4().hex, "flow_run_id": run_id,
                                         "task_name": "t", "name": "t-0",
                                         "state": {"type": "RUNNING", "timestamp": now}}]}
                assert call(f"/flow-runs/{run_id}/events",
                            events | ({"lease": lease} if lease else {})) == 409
                assert call(f"/flow-runs/{run_id}/heartbeat",
                            {"lease": lease} if lease else {}) in (409, 422)
        for kind, extra in (("RUNNING", {}), ("PENDING", {}),
                            ("PENDING", {"lease": "a" * 32, "deployment_id": ref})):
            body = {"flow_name": "fenced-flow", "state": {"type": kind, "timestamp": now}}
            assert call("/flow-runs", body | extra) == 422
        after = {run_id: api.get(f"/flow-runs/{run_id}").json()
                 for run_id in (queued, running, finished)}
        for run_id in after:
            assert after[run_id]["version"] == before[run_id]["version"], run_id
            assert api.get(f"/flow-runs/{run_id}/logs").json()["items"] == [] or all(
                line["message"] != "forged"
                for line in api.get(f"/flow-runs/{run_id}/logs").json()["items"])
    figures = Figures("9g writes without the lease", seed, runs=3, workers=0,
                      crashes_injected=len(answers),
                      seconds=time.monotonic() - started)
    figures.notes.update({"requests": len(answers),
                          "accepted": sum(code < 300 for _, code in answers),
                          "5xx": sum(code >= 500 for _, code in answers)})
    figures.save()
