"""Self-fencing, in real processes: a flow process stops its whole process group (and what left
the group) when its lease pipe closes or its deadline passes unrenewed; the worker's side keeps
the deadline from the control plane's terms and kills what a run left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from sluice.leases import lease_clock
from sluice.models import HeartbeatResponse, Running
from sluice_worker import processes
from sluice_worker.supervisor import RunSettings, RunSupervisor
from sluice_worker.worker import Worker

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux /proc")

#: A flow process stand-in: fenced like `execute.main`, it starts a child that leaves its group
#: (setsid) and then idles; both write their pids to `out` and tick in `ticks`.
FENCED = textwrap.dedent("""
    import os, subprocess, sys, time
    from sluice_worker.fence import Fence
    out = sys.argv[1]
    fence = Fence.from_environment("fr-1", os.environ["SLUICE_LEASE"])
    fence.start()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"],
                             start_new_session=True)
    with open(out, "w") as fh:
        fh.write(f"{os.getpid()} {child.pid}\\n")
    while True:
        time.sleep(0.05)
""")


def _alive(pid: int) -> bool:
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


def _wait(predicate: Any, timeout: float) -> bool:
    deadline = lease_clock() + timeout
    while lease_clock() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.fixture
def fenced(tmp_path):
    """A fenced process with a 2 s lease from now and an escaped child; yields (process, pipe,
    its pid, the child's pid)."""
    out = tmp_path / "pids"
    lease = f"lease-{os.getpid()}-{time.monotonic_ns()}"
    process, pipe = processes.spawn([sys.executable, "-c", FENCED, str(out)],
                                    env={**os.environ, "SLUICE_LEASE": lease}, cwd=None)
    pipe.send(lease_clock() + 2.0)
    assert _wait(lambda: out.exists() and out.read_text().endswith("\n"), 30)
    pid, child = (int(x) for x in out.read_text().split())
    held = {"pipe": pipe}
    yield process, held, pid, child, lease
    if held["pipe"] is not None:
        held["pipe"].close()
    processes.kill_run_processes(process.pid, lease)
    process.wait(10)


def test_a_flow_process_whose_worker_is_gone_stops_itself_and_what_it_started(fenced):
    process, held, pid, child, _ = fenced
    # When its worker disappears (the pipe's only write end closes: a SIGKILLed worker)
    closed_at = lease_clock()
    held.pop("pipe").close()
    held["pipe"] = None
    # Then it kills its group and the child that left the group, at once
    assert process.wait(10) == -signal.SIGKILL
    assert _wait(lambda: not _alive(child), 5)
    assert lease_clock() - closed_at < 2.0  # long before its 2 s lease ran out


def test_a_flow_process_stops_at_its_deadline_unless_renewed(fenced):
    process, held, pid, child, _ = fenced
    pipe = held["pipe"]
    # Given renewals for a while (its worker beats)
    for _ in range(5):
        pipe.send(lease_clock() + 1.0)
        time.sleep(0.3)
    assert process.poll() is None and _alive(child)
    # When renewals stop (its worker is frozen), Then it stops itself at the deadline
    stopped_renewing = lease_clock()
    assert process.wait(10) == -signal.SIGKILL
    assert 0.5 < lease_clock() - stopped_renewing < 3.0
    assert _wait(lambda: not _alive(child), 5)


def test_a_flow_process_paused_past_its_deadline_reads_its_renewals_before_judging(fenced):
    process, held, pid, child, _ = fenced
    pipe = held["pipe"]
    # Given a process stopped (SIGSTOP) while its worker goes on renewing
    os.kill(pid, signal.SIGSTOP)
    end = lease_clock() + 3.0
    while lease_clock() < end:
        pipe.send(lease_clock() + 2.0)
        time.sleep(0.2)
    # When it continues past the deadline it had, Then the waiting renewals keep it alive
    os.kill(pid, signal.SIGCONT)
    pipe.send(lease_clock() + 2.0)
    time.sleep(0.5)
    assert process.poll() is None


def test_a_stopped_process_finds_the_newest_renewal_however_long_it_was_stopped(fenced):
    process, held, pid, child, _ = fenced
    pipe = held["pipe"]
    # Given a process stopped while its worker sends far more renewals than a pipe holds
    os.kill(pid, signal.SIGSTOP)
    for _ in range(20_000):  # 160 KB of renewals against a 64 KB pipe
        assert pipe.send(lease_clock() + 2.0)
    # When it continues, Then the newest renewal is there and it goes on
    os.kill(pid, signal.SIGCONT)
    time.sleep(0.5)
    assert process.poll() is None


def test_the_worker_kills_what_a_run_left_behind_by_its_lease_mark(tmp_path):
    lease = f"mark-{time.monotonic_ns()}"
    escaped = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"],
                               env={**os.environ, "SLUICE_LEASE": lease},
                               start_new_session=True)
    try:
        assert _wait(lambda: processes.marked_processes(lease) == [escaped.pid], 10)
        assert processes.kill_run_processes(None, lease) == 1
        assert escaped.wait(10) == -signal.SIGKILL
        assert processes.marked_processes(lease) == []
    finally:
        if escaped.poll() is None:
            escaped.kill()


# -- the worker's side of the lease ---------------------------------------------------------------
class Plane:
    """Heartbeats answered with a 3 s lease renewed every 1 s."""

    def __init__(self) -> None:
        self.beats = 0

    def heartbeat(self, flow_run_id: str, lease: str, **_: Any) -> HeartbeatResponse:
        self.beats += 1
        return HeartbeatResponse(state=Running(), lease_seconds=3.0,
                                 heartbeat_interval_seconds=1.0)


class Queue:
    def change_visibility(self, receipt: str, seconds: int) -> None:
        pass


def _supervisor(interval: float) -> RunSupervisor:
    worker = Worker(Plane(), Queue(), pool="default", name="w1", code=None, reporter=None,
                    standby=False, run_settings=RunSettings(heartbeat_interval=interval))
    supervisor = RunSupervisor(worker, {"MessageId": "m", "Body": "{}", "ReceiptHandle": "r"})
    supervisor.flow_run_id, supervisor.lease = "fr-1", "L"
    return supervisor


def test_the_worker_beats_as_often_as_the_control_plane_asks_and_knows_its_deadline():
    # Given a worker configured to beat every 10 s
    supervisor = _supervisor(10.0)
    # When a heartbeat answer states a 3 s lease renewed every second
    sent = lease_clock()
    supervisor._heartbeat()
    # Then it beats every second, and its deadline counts from when it sent the beat
    assert supervisor.held.interval == 1.0
    assert sent <= supervisor.held.deadline - 3.0 <= lease_clock()
    assert not supervisor.held.expired()


def test_the_next_beat_comes_sooner_as_the_deadline_nears():
    supervisor = _supervisor(10.0)
    supervisor._heartbeat()
    supervisor.held.deadline = lease_clock() + 0.4  # renewals failed meanwhile
    assert supervisor.held.until_next_beat() <= 0.2
    supervisor.held.deadline = lease_clock() - 0.1
    assert supervisor.held.expired()
