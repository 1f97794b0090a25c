"""A flow started as a plain script reports to a real embedded server (issue: embedded server,
profiles and the reporting client)."""

from __future__ import annotations

import signal
import textwrap
import time

import pytest

from .harness import Process, wait_for

pytestmark = pytest.mark.e2e

FLOW_200 = textwrap.dedent('''
    import sys, time
    from sluice import flow, task, get_run_logger

    attempts = {}

    @task(retries=2)
    def work(i: int, pause: float) -> int:
        attempts[i] = attempts.get(i, 0) + 1
        if i % 25 == 0 and attempts[i] == 1:
            raise ValueError(f"task {i} fails once")
        time.sleep(pause)
        return i

    @flow(log_prints=True)
    def two_hundred(pause: float = 0.0) -> int:
        logger = get_run_logger()
        total = 0
        for i in range(200):
            total += work(i, pause)
            if i % 50 == 0:
                logger.info("progress %d", i)
        print("all done")
        return total

    if __name__ == "__main__":
        pause = float(sys.argv[1]) if len(sys.argv) > 1 else 0.0
        state = two_hundred(pause, return_state=True)
        print("FINAL", state.name, two_hundred.name)
''')


def _only_run(sluice):
    runs = sluice.cli_json("flow-run", "ls")
    assert len(runs) == 1, runs
    return runs[0]


def test_script_flow_shows_up_with_task_runs_and_logs(sluice, tmp_path):
    # Given the local profile the server wrote, When a flow runs as a plain script
    script = tmp_path / "flow200.py"
    script.write_text(FLOW_200)
    done = sluice.python(script)
    assert done.returncode == 0 and "FINAL Completed" in done.stdout, done.stderr

    # Then the CLI shows the run Completed with 200 task runs and the right run counts
    run = _only_run(sluice)
    assert run["state"]["type"] == "COMPLETED" and run["flow_name"] == "two-hundred"
    detail = sluice.cli_json("flow-run", "inspect", run["id"])
    task_runs = detail["task_runs"]
    assert len(task_runs) == 200
    assert all(t["state"]["type"] == "COMPLETED" for t in task_runs)
    retried = sorted(int(t["name"].split("-")[1]) for t in task_runs if t["run_count"] == 2)
    assert retried == [0, 25, 50, 75, 100, 125, 150, 175]
    assert [s["name"] for s in detail["history"]] == ["Pending", "Running", "Completed"]

    # And the logs are all there, in order, through the API as through the CLI
    lines = sluice.cli("flow-run", "logs", run["id"]).stdout
    order = [lines.index(f"progress {i}") for i in (0, 50, 100, 150)]
    assert order == sorted(order)
    assert lines.index("Beginning flow run") < order[0] < lines.index("all done") < \
        lines.index("Finished in state Completed")
    with sluice.api() as api:
        page = api.get(f"/flow-runs/{run['id']}/logs", params={"limit": 200}).json()
    messages = [r["message"] for r in page["items"]]
    assert sum("fails once" in m for m in messages) == 8  # one warning per retried task


def test_data_survives_a_server_restart(sluice, tmp_path):
    script = tmp_path / "flow200.py"
    script.write_text(FLOW_200)
    assert sluice.python(script).returncode == 0
    before = _only_run(sluice)

    # When the server stops and starts again on the same data
    assert sluice.stop_server() == 0
    sluice.start_server()

    # Then the same run, task runs and logs are there
    after = _only_run(sluice)
    assert after["id"] == before["id"] and after["state"] == before["state"]
    assert len(sluice.cli_json("flow-run", "inspect", after["id"])["task_runs"]) == 200
    assert "all done" in sluice.cli("flow-run", "logs", after["id"]).stdout


def test_reports_made_while_the_server_is_down_arrive_when_it_is_back(sluice, tmp_path):
    script = tmp_path / "flow200.py"
    script.write_text(FLOW_200)
    # Given a flow that takes ~4 s (200 tasks of 20 ms)
    flow = Process([__import__("sys").executable, str(script), "0.02"], sluice.env,
                   tmp_path / "flow.log")
    wait_for(lambda: sluice.cli_json("flow-run", "ls"), 60, "the run to be created")
    # When the server goes away mid-flow and comes back 2 s later
    sluice.stop_server(signal.SIGKILL)
    time.sleep(2)
    sluice.start_server()
    assert flow.popen.wait(90) == 0, flow.output()
    assert "FINAL Completed" in flow.output()

    # Then every report made during the outage arrived, once
    run = _only_run(sluice)
    assert run["state"]["type"] == "COMPLETED"
    detail = sluice.cli_json("flow-run", "inspect", run["id"])
    assert len(detail["task_runs"]) == 200
    assert len({t["id"] for t in detail["task_runs"]}) == 200
    lines = sluice.cli("flow-run", "logs", run["id"]).stdout
    assert lines.count("progress 100") == 1 and lines.count("all done") == 1


def test_cli_errors_are_clear(sluice):
    missing = sluice.cli("flow-run", "inspect", "nope", check=False)
    assert missing.returncode == 3 and "nope" in missing.stderr
    bad_state = sluice.cli("flow-run", "ls", "--state", "exploded", check=False)
    assert bad_state.returncode == 2 and "not a state type" in bad_state.stderr
    profiles = sluice.cli_json("profile", "ls")
    assert profiles["active"] == "local"
    assert profiles["profiles"]["local"]["api_url"] == sluice.url
