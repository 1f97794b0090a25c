"""Issue 20 with a real worker process: an idle worker beats its presence less often than a
lease (presence only, no session write), and a run it claims after such an idle spell, longer
than the lease, is renewed by its first beat and completes without a crash."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from reliability.tcp_proxy import TcpProxy

from .harness import SLUICE, Process, Sluice, created_id, free_port

pytestmark = pytest.mark.e2e
PROJECT = Path(__file__).parent / "project"
#: The lease (SLUICE_HEARTBEAT_TIMEOUT_SECONDS).
LEASE_SECONDS = 3
BEAT_INTERVAL = 0.5
#: With --heartbeat-interval 0.5 the worker's presence interval is 1.5 s and it beats idle
#: every 6 of them (9 s: three leases); the spell lasts longer than that.
IDLE_SPELL_SECONDS = 12


@pytest.fixture
def short_leases(tmp_path):
    installation = Sluice(tmp_path / "home", free_port())
    installation.env["SLUICE_HEARTBEAT_TIMEOUT_SECONDS"] = str(LEASE_SECONDS)
    installation.start_server()
    yield installation
    installation.close()


def _beats(proxy: TcpProxy) -> int:
    return sum(1 for _, path, _ in proxy.exchanges if path.endswith("/workers/idle/heartbeat"))


def test_a_run_claimed_after_an_idle_spell_longer_than_a_lease_completes(short_leases, tmp_path):
    sluice = short_leases
    sluice.cli("deploy", "flows.py:slow_flow", "--name", "slow", "--project-dir", str(PROJECT))
    proxy = TcpProxy(("127.0.0.1", sluice.port)).start()
    proxy.heal()  # record every exchange from now on
    worker = Process(
        [*SLUICE, "worker", "start", "--name", "idle", "--poll-wait", "1",
         "--heartbeat-interval", str(BEAT_INTERVAL), "--visibility-timeout", "4"],
        {**sluice.env, "SLUICE_API_URL": proxy.url, "SLUICE_SQS_ENDPOINT": f"{sluice.url}/sqs",
         "SLUICE_API_TOKEN": sluice.token}, tmp_path / "worker-idle.log")
    sluice.workers.append(worker)

    def run(index: int, seconds: int) -> dict:
        run_id = created_id(sluice.cli(
            "deployment", "run", "slow-flow/slow", f"--param=pid_file={tmp_path / f'p{index}'}",
            f"--param=seconds={seconds}").stdout)
        return sluice.wait_terminal(run_id, timeout=90)

    try:
        # Given a worker whose session renewed a run that then completed
        first = run(0, 1)
        # When it stays idle longer than its idle period (and so than the lease)
        beats_before = _beats(proxy)
        time.sleep(IDLE_SPELL_SECONDS)
        idle_beats = _beats(proxy) - beats_before
        # And then claims a run two leases long
        second = run(1, 2 * LEASE_SECONDS)
    finally:
        proxy.close()
    # Then both completed on their first attempt: the first beat after the claim renewed the
    # run (the session had held nothing since its lease ran out)
    assert [r["state"]["type"] for r in (first, second)] == ["COMPLETED"] * 2, worker.output()
    with sluice.api() as api:
        history = api.get(f"/flow-runs/{second['id']}/history").json()
    assert "Crashed" not in [state["name"] for state in history], history
    assert "session expired" not in worker.output()
    print(f"\nidle for {IDLE_SPELL_SECONDS} s (lease {LEASE_SECONDS} s): {idle_beats} presence "
          f"beats (busy, the worker beats every {BEAT_INTERVAL} s)")
