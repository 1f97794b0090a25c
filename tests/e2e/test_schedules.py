"""Schedules, crashed runs and retries on a real server and real workers (issue: schedules,
late and crashed runs, retries from failure, backfill)."""

from __future__ import annotations

import os
import signal
from datetime import datetime, timedelta, timezone

import pytest

from .harness import Sluice, free_port, wait_for
from .test_workers import PROJECT, _alive, deploy, ledger_lines, trigger

pytestmark = pytest.mark.e2e


@pytest.fixture
def fast_monitor(tmp_path):
    """A server whose monitor declares a run crashed 3 s after its last heartbeat."""
    installation = Sluice(tmp_path / "home", free_port())
    installation.env["SLUICE_HEARTBEAT_TIMEOUT_SECONDS"] = "3"
    installation.start_server()
    yield installation
    installation.close()


def test_a_killed_worker_run_is_crashed_then_retried_to_completion(fast_monitor, tmp_path):
    sluice = fast_monitor
    deploy(sluice, "first_attempt_hangs", "hang", "--retries", "1")
    worker = sluice.start_worker(name="doomed")
    pid_file, marker = tmp_path / "pid", tmp_path / "marker"
    run_id = trigger(sluice, "first-attempt-hangs/hang", pid_file=str(pid_file),
                     marker=str(marker))
    pid = int(wait_for(lambda: pid_file.exists() and pid_file.read_text(), 60, "attempt 1"))
    # When the machine dies: the worker and its flow process are SIGKILLed
    worker.send_signal(signal.SIGKILL)
    os.kill(pid, signal.SIGKILL)
    worker.popen.wait(10)
    wait_for(lambda: not _alive(pid), 10, "the flow process to die")
    # Then the monitor finds the attempt Crashed within the heartbeat bound and, retries being
    # left, schedules the next attempt (one history entry: AwaitingRetry after Crashed)
    def crash_recorded():
        history = sluice.cli_json("flow-run", "inspect", run_id)["history"]
        return [s for s in history if (s.get("details") or {}).get("failed_state") == "Crashed"]

    (retry_state,) = wait_for(crash_recorded, 30, "the attempt to be found Crashed")
    assert retry_state["name"] == "AwaitingRetry" and "heartbeat" in retry_state["message"]
    # And a new worker completes the retry
    sluice.start_worker(name="healthy")
    final = sluice.wait_terminal(run_id, 60)
    assert final["state"]["type"] == "COMPLETED" and final["run_count"] == 2
    names = [s["name"] for s in sluice.cli_json("flow-run", "inspect", run_id)["history"]]
    assert names.index("AwaitingRetry") < names.index("Completed")


def test_retry_from_failure_skips_tasks_that_completed(sluice, tmp_path):
    deploy(sluice, "resumable_pipeline", "resumable")
    sluice.start_worker()
    calls, marker = tmp_path / "calls", tmp_path / "marker"
    run_id = trigger(sluice, "resumable-pipeline/resumable", calls=str(calls),
                     marker=str(marker))
    assert sluice.wait_terminal(run_id, 60)["state"]["type"] == "FAILED"
    # When the user retries the failed run
    sluice.cli("flow-run", "retry", run_id)
    final = sluice.wait_terminal(run_id, 60)
    # Then it completes, and the extract that had completed was not run again
    assert final["state"]["type"] == "COMPLETED" and final["run_count"] == 2
    assert calls.read_text().split() == ["extract", "load", "load"]
    task_runs = sluice.cli_json("flow-run", "inspect", run_id)["task_runs"]
    assert any(t["name"] == "expensive_extract-0" and t["state"]["name"] == "Cached"
               for t in task_runs)


def test_interval_schedule_runs_on_a_worker_and_pause_stops_it(sluice, tmp_path):
    ledger = tmp_path / "ledger"
    deploy(sluice, "stamp", "every-2s", "--interval", "2", f"--param=ledger={ledger}")
    inspect = sluice.cli_json("deployment", "inspect", "stamp/every-2s")
    assert len(inspect["next_runs"]) >= 3
    sluice.start_worker()
    wait_for(lambda: len(ledger_lines(ledger)) >= 3, 60, "three scheduled runs")
    runs = [r for r in sluice.cli_json("flow-run", "ls") if r["state"]["type"] == "COMPLETED"]
    times = sorted(datetime.fromisoformat(r["scheduled_at"]) for r in runs)
    gaps = {(b - a).total_seconds() for a, b in zip(times, times[1:])}
    assert gaps <= {2.0, 4.0, 6.0}  # on the 2 s grid, never two runs for one time
    assert len(times) == len(set(times))
    # When the deployment is paused, Then no new run starts
    sluice.cli("deployment", "pause", "stamp/every-2s")
    import time as _time

    _time.sleep(1.5)
    count = len(ledger_lines(ledger))
    _time.sleep(4)
    assert len(ledger_lines(ledger)) == count


def test_backfill_creates_past_runs_once(sluice, tmp_path):
    ledger = tmp_path / "ledger"
    deploy(sluice, "stamp", "hourly", "--cron", "0 * * * *", "--timezone", "Europe/Berlin",
           f"--param=ledger={ledger}")
    end = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(hours=5)
    args = ["deployment", "backfill", "stamp/hourly", "--start", start.isoformat(),
            "--end", end.isoformat(), "--max-active", "2"]
    first = sluice.cli_json(*args)
    assert first["slots"] == 5 and first["created"] == 5
    again = sluice.cli_json(*args)
    assert again["created"] == 0 and again["existing"] == 5
    sluice.start_worker()
    wait_for(lambda: len(ledger_lines(ledger)) == 5, 90, "the five backfill runs")
    assert len({run_id for _, run_id, *_ in ledger_lines(ledger)}) == 5


def test_bad_schedules_are_refused_with_the_fix(sluice):
    six = sluice.cli("deploy", "flows.py:stamp", "--name", "bad", "--project-dir", str(PROJECT),
                     "--cron", "0 0 2 * * *", "--param=ledger=/tmp/x", check=False)
    assert six.returncode == 2 and "has 6 fields" in six.stderr and "5-field" in six.stderr
    zone = sluice.cli("deploy", "flows.py:stamp", "--name", "bad", "--project-dir",
                      str(PROJECT), "--cron", "0 2 * * *", "--timezone", "Mars/Olympus",
                      "--param=ledger=/tmp/x", check=False)
    assert zone.returncode == 2 and "Mars/Olympus" in (zone.stderr + zone.stdout)
