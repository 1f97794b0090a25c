"""Scenarios 2 and 3: the control plane unreachable.

2. For everyone, shorter than the heartbeat timeout, while runs are in flight: the server is
   frozen (SIGSTOP/SIGCONT: requests hang) or killed and restarted on the same port (requests are
   refused). The first outage comes right after some runs were claimed, so their processes start
   while the API is down. No run is falsely Crashed, and what the flows buffered arrives exactly
   once.
3. For one worker, longer than the heartbeat timeout: its API traffic goes through a TCP proxy
   that the test cuts (connections reset, or packets silently dropped). Unable to renew its
   leases, the worker stops its runs at their deadline (issue 12: the attempt fences itself),
   before the monitor crashes the attempts after the lease and its margin; the runs are retried
   on the other worker, nothing of the cut-off attempts runs after that (no "zombie" ledger
   entry), and when the cut heals whatever the stale worker still says about them gets 409.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from datetime import datetime

import pytest

from e2e.harness import free_port, wait_for

from .driver import (
    HEARTBEAT_INTERVAL,
    Figures,
    Installation,
    Ledger,
    StuckWatch,
    alive,
    chaos_runs,
    chaos_workers,
    wait_all_terminal,
)
from .invariants import check_runs
from .tcp_proxy import TcpProxy

pytestmark = [pytest.mark.reliability, pytest.mark.e2e]


@pytest.fixture
def patient(tmp_path):
    """An installation whose monitor waits 12 s for a heartbeat: longer than the outages."""
    inst = Installation(tmp_path / "home", free_port(), heartbeat_timeout=12)
    inst.start_server()
    yield inst
    inst.close()


def test_short_outages_crash_nothing_and_lose_no_report(patient, tmp_path, seed, rng):
    started = time.monotonic()
    inst = patient
    n_runs, n_workers = max(4, chaos_runs(12) // 2), chaos_workers(2)
    steps, lines = 4, 6
    ref = inst.deploy("chaos_flow", "chatty")
    ledger = Ledger(tmp_path / "ledger")
    params = {"ledger": str(ledger), "steps": steps, "step_seconds": 1.5, "lines": lines}
    runs = [inst.trigger(ref, **params) for _ in range(n_runs)]
    slots = min(-(-n_runs // n_workers), 4)
    for i in range(n_workers):  # one slot more than the first runs fill
        inst.start_worker(name=f"w{i}", limit=slots + 1)
    wait_for(lambda: sum(e.event == "flow-start" for e in ledger.entries()) >= min(
        n_runs, slots * n_workers), 60, "the workers to fill their slots")
    # Runs that are claimed just before the first outage: their processes start (and read
    # their run) while the API is down. (With more runs than slots, claims go on all the time
    # and every outage catches some process starting.)
    if n_runs <= slots * n_workers:
        late = [inst.trigger(ref, **params) for _ in range(n_workers)]
        runs += late
        n_runs += len(late)
        with inst.reader() as api:
            wait_for(lambda: all(s != "SCHEDULED" for s in api.states(late).values()), 30,
                     "the late runs to be claimed")
    n_outages = max(2, chaos_runs(12) // 25)
    kinds = ["restart", "freeze"]  # both kinds, every seed (a restart refuses connections
    kinds += [rng.choice(["freeze", "restart"]) for _ in range(n_outages)]  # right away)
    outages: list[tuple[str, float]] = []
    windows: list[tuple[float, float]] = []

    def all_done() -> bool:
        return sum(e.event == "flow-end" for e in ledger.entries()) >= n_runs

    def in_flight() -> int:
        events = Counter(e.event for e in ledger.entries())
        return events["flow-start"] - events["flow-end"]

    busy: list[bool] = []  # whether runs were in flight when each outage began

    with StuckWatch(inst.url, inst.token, inst.heartbeat_timeout) as watch:
        for number in range(n_outages):
            if number >= 2 and all_done():
                break  # every run is done: an outage now would prove nothing
            kind, seconds = kinds[number], rng.uniform(2.0, 4.5)
            busy.append(in_flight() > 0)
            watch.paused.set()
            began = time.time()
            outages.append((kind, _outage(inst, kind, seconds)))
            windows.append((began, time.time()))
            watch.paused.clear()
            time.sleep(rng.uniform(0.5, 1.5))
        print(f"outages (kind, seconds unreachable): {outages}")
        wait_all_terminal(inst, runs, timeout=120 + 2 * n_runs)
    with inst.reader() as api:
        findings = check_runs(api, runs, ledger=ledger)
        duplicates: list[str] = []
        missing: list[str] = []
        bad_task_runs: list[str] = []
        during = [0] * len(windows)
        for run_id in runs:
            lines_of_run = api.logs(run_id)
            for line in lines_of_run:
                at = datetime.fromisoformat(line["timestamp"]).timestamp()
                for index, (began, ended) in enumerate(windows):
                    during[index] += began < at < ended
            # (The reporter's own "control plane unreachable" notices repeat, once per outage.)
            messages = Counter(line["message"] for line in lines_of_run
                               if not line["message"].startswith("control plane "))
            duplicates += [f"{run_id}: {m!r} x{n}" for m, n in messages.items() if n > 1]
            expected = {f"line {k} of step {i}" for i in range(steps) for k in range(lines)}
            missing += [f"{run_id}: {m!r}" for m in sorted(expected - set(messages))]
            task_runs = api.task_runs(run_id)
            names = Counter(t["name"] for t in task_runs)
            if sorted(names) != [f"step-{i}" for i in range(steps)] or set(
                    names.values()) != {1} or {t["state"]["type"] for t in task_runs} != {
                    "COMPLETED"}:
                bad_task_runs.append(f"{run_id}: {sorted(names.items())}")
    Figures("2 API outage < timeout", seed, runs=n_runs, workers=n_workers,
            crashes_injected=len(outages), retries=findings.retries, lost=len(findings.lost),
            duplicated=len(findings.duplicated) + len(duplicates),
            seconds=time.monotonic() - started,
            notes={"outages": outages, "false_crashes": findings.crash_retries,
                   "lines_buffered_per_outage": during}).save()
    findings.assert_clean(seed)
    assert findings.crash_retries == 0 and findings.retries == 0, f"seed {seed}: false Crashed"
    assert all(r["run_count"] == 1 for r in findings.runs_by_id.values())
    assert not duplicates, f"seed {seed}: log lines stored twice: {duplicates[:10]}"
    assert not missing, f"seed {seed}: log lines lost: {missing[:10]}"
    assert not bad_task_runs, f"seed {seed}: task runs lost or doubled: {bad_task_runs[:5]}"
    assert not watch.stuck
    # The outages really happened while the runs were running: lines written during each of
    # them were buffered and arrived afterwards, once.
    assert busy[0] and all(n for n, b in zip(during, busy) if b), (
        f"seed {seed}: no log line written during an outage: {during} (busy: {busy})")
    assert all(seconds < inst.heartbeat_timeout - 2 for _, seconds in outages), outages


def _outage(inst: Installation, kind: str, seconds: float) -> float:
    """Make the API unreachable; returns how long it really was."""
    assert inst.server is not None
    began = time.monotonic()
    if kind == "freeze":
        inst.server.send_signal(signal.SIGSTOP)
        time.sleep(seconds)
        inst.server.send_signal(signal.SIGCONT)
    else:
        inst.stop_server(signal.SIGKILL)
        time.sleep(max(0.0, seconds - 1.5))  # the restart itself takes about 1.5 s
        inst.start_server()
    return time.monotonic() - began


def test_a_partitioned_worker_is_replaced_and_its_late_writes_refused(installation, tmp_path,
                                                                     seed, rng):
    started = time.monotonic()
    inst = installation
    n_runs = min(max(1, chaos_runs(12) // 50), 10)  # at once on the cut-off worker
    ref = inst.deploy("chaos_flow", "long", "--retries", "1")
    ledger = Ledger(tmp_path / "ledger")
    step_seconds, steps = 0.5, 24
    proxy = TcpProxy(("127.0.0.1", inst.port)).start()
    try:
        # Worker A reaches the API only through the proxy (its queue directly: the cut is
        # between that machine and the API); so do the flow processes it starts.
        stale = inst.start_worker(name="partitioned", limit=n_runs, env={
            "SLUICE_API_URL": proxy.url, "SLUICE_SQS_ENDPOINT": f"{inst.url}/sqs",
            "SLUICE_API_TOKEN": inst.token})
        run_ids = [inst.trigger(ref, ledger=str(ledger), steps=steps, step_seconds=step_seconds)
                   for _ in range(n_runs)]
        first_steps = rng.randint(2, 5)

        def going() -> bool:
            done = Counter(e.run_id for e in ledger.entries() if e.event == "step-done")
            return all(done[r] >= first_steps for r in run_ids)

        wait_for(going, 60, "the first attempts to get going")
        flow_pids = {e.pid for e in ledger.entries() if e.event == "flow-start"}
        # When the cut lasts longer than the heartbeat timeout (connections reset, or packets
        # silently dropped: the seed says which)
        mode = rng.choice(["reset", "blackhole"])
        cut_at = time.time()
        proxy.cut(mode)
        with inst.reader() as api, StuckWatch(inst.url, inst.token, inst.heartbeat_timeout) as watch:
            def crashed() -> bool:
                return all(any((s.get("details") or {}).get("failed_state") == "Crashed"
                               for s in api.history(run_id)) for run_id in run_ids)

            wait_for(crashed, inst.heartbeat_timeout + 10, "the monitor to crash the attempts")
            detected = time.time() - cut_at
            # The cut-off attempts fenced themselves: unable to renew, their worker stopped
            # them at the lease's deadline, before the monitor could give the runs to another.
            assert not any(alive(pid) for pid in flow_pids), "the cut-off attempts still run"
            wait_for(lambda: stale.output().count("its lease expired unrenewed") == n_runs, 10,
                     f"the stale worker to say so:\n{stale.output()}")
            # Then another worker takes the retries and finishes them while A is cut off
            inst.start_worker(name="healthy", limit=n_runs)
            wait_all_terminal(inst, run_ids, timeout=60 + 5 * n_runs)
            finals = api.states(run_ids)
            assert set(finals.values()) == {"COMPLETED"}, finals
            # And once the cut heals, whatever A still says about those runs is refused (409)
            proxy.heal()
            healed_at = time.time()
            time.sleep(2 * HEARTBEAT_INTERVAL + 1)
            run_writes = [(m, p, s) for m, p, s in proxy.exchanges
                          if m == "POST" and p.startswith("/flow-runs/")]
            assert {s for *_, s in run_writes} <= {409}, proxy.exchanges
            assert stale.popen.poll() is None, "the stale worker must stay up"
            findings = check_runs(api, run_ids, ledger=ledger)
            histories = {r: [s["name"] for s in api.history(r)] for r in run_ids}
            task_runs = {r: api.task_runs(r) for r in run_ids}
    finally:
        proxy.close()
    first_leases = {e.lease for e in ledger.entries() if e.pid in flow_pids}
    fenced_after = max(e.at for e in ledger.entries() if e.lease in first_leases) - cut_at
    late = [e for e in ledger.entries() if e.pid in flow_pids and e.at > healed_at]
    Figures("3 one worker cut off > timeout", seed, runs=n_runs, workers=2,
            crashes_injected=n_runs, retries=findings.retries, lost=len(findings.lost),
            duplicated=len(findings.duplicated), max_detection_latency=detected,
            seconds=time.monotonic() - started,
            notes={"cut": mode, "cut_off_attempt_active_after_cut_s": round(fenced_after, 2),
                   "stale_answers": dict(Counter(f"{m} {p.rsplit('/', 1)[-1]} {s}"
                                          for m, p, s in proxy.exchanges)),
                   "zombie_entries": sum(findings.zombie.values())}).save()
    findings.assert_clean(seed)
    assert not watch.stuck, watch.stuck
    for run_id, history in histories.items():
        assert history.count("Completed") == 1 and history[-1] == "Completed", history
        assert findings.runs_by_id[run_id]["run_count"] == 2
    # Nothing of a cut-off attempt ran after the control plane gave its run to another attempt
    # (the checker counts such entries apart as "zombie"), nor after the heal.
    assert not findings.zombie, findings.zombie
    assert not late, late
    assert fenced_after <= inst.heartbeat_timeout + 1.0, fenced_after
    # The winning attempt recorded every step (run, or Cached from the first attempt's
    # persisted results); of the first attempt only what it sent before the cut is there:
    # no task run started between the cut and the second claim (those records reached the
    # API after the heal, and were refused).
    for run_id, records in task_runs.items():
        assert {t["name"] for t in records} == {f"step-{i}" for i in range(steps)}, records
        claims = [s for s in findings.histories[run_id] if s["name"] == "Pending"]
        second_claim = datetime.fromisoformat(claims[1]["timestamp"]).timestamp()
        late_records = [t for t in records if t.get("start_time") and cut_at + 0.2 <
                        datetime.fromisoformat(t["start_time"]).timestamp() < second_claim]
        assert not late_records, late_records


def test_a_claim_whose_answer_is_lost_is_taken_up_again_by_its_worker(patient, tmp_path, seed,
                                                                      rng):
    """The server writes a claim, the answer never reaches the worker, and the worker cannot
    reach the API for a few seconds (less than the heartbeat timeout). The worker must take up
    its own claim again (same claim id, same lease): if it let the message go, another worker
    would find the run held, drop the message, and the run would be crashed for silence."""
    started = time.monotonic()
    inst = patient
    ref = inst.deploy("chaos_flow", "claimed")  # no retries: a false crash would end the run
    ledger = Ledger(tmp_path / "ledger")
    proxy = TcpProxy(("127.0.0.1", inst.port)).start()
    seconds = rng.uniform(3.0, 5.0)
    proxy.sever_after_response("/claim", seconds)
    try:
        # Should the worker let the message go, it must not be the one to get it back (its
        # second receive kills it): the bystander then gets it, as it could in real life.
        unlucky = inst.start_worker(name="unlucky", env={
            "SLUICE_API_URL": proxy.url, "SLUICE_SQS_ENDPOINT": f"{inst.url}/sqs",
            "SLUICE_API_TOKEN": inst.token,
            "SLUICE_WORKER_FAULT": "after_receive:2"})
        run_id = inst.trigger(ref, ledger=str(ledger), steps=2, step_seconds=0.1)
        wait_for(proxy.severed.is_set, 30, "the claim's answer to be lost")
        inst.start_worker(name="bystander")  # would take the message if it were let go
        final = inst.wait_terminal(run_id, 60)
        with inst.reader() as api:
            findings = check_runs(api, [run_id], ledger=ledger)
    finally:
        proxy.close()
    Figures("3b lost claim answer", seed, runs=1, workers=2, crashes_injected=1,
            retries=findings.retries, lost=len(findings.lost),
            duplicated=len(findings.duplicated), seconds=time.monotonic() - started,
            notes={"cut_s": round(seconds, 1)}).save()
    findings.assert_clean(seed)
    assert final["run_count"] == 1 and final["worker"] == "unlucky", final
    assert unlucky.popen.poll() is None, unlucky.output()
