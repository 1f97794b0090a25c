"""Per-worker heartbeats with a real worker process (issue 18.1): runs longer than the lease
complete without a crash while the worker renews all of them with one request per interval."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from reliability.tcp_proxy import TcpProxy

from .harness import SLUICE, Process, Sluice, created_id, free_port

pytestmark = pytest.mark.e2e
PROJECT = Path(__file__).parent / "project"
#: The lease (SLUICE_HEARTBEAT_TIMEOUT_SECONDS): each run lasts three of them.
LEASE_SECONDS = 3
RUN_SECONDS = 3 * LEASE_SECONDS
RUNS = 3
BEAT_INTERVAL = 0.5


@pytest.fixture
def short_leases(tmp_path):
    installation = Sluice(tmp_path / "home", free_port())
    installation.env["SLUICE_HEARTBEAT_TIMEOUT_SECONDS"] = str(LEASE_SECONDS)
    installation.start_server()
    yield installation
    installation.close()


def test_long_runs_complete_on_one_heartbeat_per_interval_per_worker(short_leases, tmp_path):
    sluice = short_leases
    sluice.cli("deploy", "flows.py:slow_flow", "--name", "slow", "--project-dir", str(PROJECT))
    # Given a worker with three slots whose API traffic goes through a proxy that counts it
    proxy = TcpProxy(("127.0.0.1", sluice.port)).start()
    proxy.heal()  # record every exchange from now on
    worker = Process(
        [*SLUICE, "worker", "start", "--name", "hb", "--poll-wait", "1", "--limit", str(RUNS),
         "--heartbeat-interval", str(BEAT_INTERVAL), "--visibility-timeout", "4"],
        {**sluice.env, "SLUICE_API_URL": proxy.url, "SLUICE_SQS_ENDPOINT": f"{sluice.url}/sqs",
         "SLUICE_API_TOKEN": sluice.token}, tmp_path / "worker-hb.log")
    sluice.workers.append(worker)
    try:
        # When three runs, each three leases long, run on it at once
        started = time.monotonic()
        run_ids = [created_id(sluice.cli(
            "deployment", "run", "slow-flow/slow", f"--param=pid_file={tmp_path / f'p{i}'}",
            f"--param=seconds={RUN_SECONDS}").stdout) for i in range(RUNS)]
        finals = [sluice.wait_terminal(run_id, timeout=90) for run_id in run_ids]
        elapsed = time.monotonic() - started
    finally:
        proxy.close()
    # Then every run completed on its first attempt: no crash, no retry
    assert [run["state"]["type"] for run in finals] == ["COMPLETED"] * RUNS, worker.output()
    with sluice.api() as api:
        for run_id in run_ids:
            history = api.get(f"/flow-runs/{run_id}/history").json()
            assert "Crashed" not in [state["name"] for state in history], history
    # And the worker renewed them through the per-worker route only (no per-run heartbeat)
    paths = Counter("per-worker" if path.endswith("/workers/hb/heartbeat") else
                    "per-run" if path.endswith("/heartbeat") else "presence"
                    if path.endswith("/workers") else "other"
                    for _, path, _ in proxy.exchanges)
    assert paths["per-worker"] >= 1 and paths["per-run"] == 0 and paths["presence"] == 0, paths
    print(f"\n{RUNS} runs of {RUN_SECONDS} s (lease {LEASE_SECONDS} s) in {elapsed:.1f} s: "
          f"{paths['per-worker']} per-worker heartbeats "
          f"({paths['per-worker'] / elapsed:.2f}/s for the worker; per-run heartbeats would "
          f"have been about {RUNS / BEAT_INTERVAL:.0f}/s), other requests: {paths['other']}")
