"""Issue 15: the commands operators reach for (schedules, run later, retry --watch, pools,
completion) and the mistakes left: a mistyped timezone, a bad data directory. Each test runs
the real CLI against a real embedded control plane (and a real worker where a run must run)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone

import pytest

from tests.cli.test_mistakes import one_line_error, run_cli
from tests.cli.served import served_project
from tests.e2e.harness import free_port

FLOWS = textwrap.dedent('''
    import os

    from sluice import flow, get_run_logger, task


    @task
    def shout(word: str) -> str:
        get_run_logger().info("shouting %s", word)
        return word.upper()


    @flow
    def greet(name: str = "world") -> str:
        get_run_logger().info("hello %s", name)
        return shout(name)


    @flow(retries=0)
    def flaky() -> str:
        marker = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixed")
        if not os.path.exists(marker):
            raise RuntimeError("not fixed yet")
        return "fixed"
''')


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with served_project(tmp_path_factory.mktemp("cli-operator"), FLOWS) as (sluice, project):
        sluice.cli("deploy", "flows.py:greet", "--name", "g", "--project-dir", str(project),
                   cwd=project)
        yield sluice, project


# ---- mistakes ------------------------------------------------------------------------------------

def test_a_mistyped_timezone_gets_did_you_mean(served):
    sluice, project = served
    done = sluice.cli("deploy", "flows.py:greet", "--name", "tz", "--cron", "0 2 * * *",
                      "--timezone", "America/New_Yrok", "--project-dir", str(project),
                      cwd=project, check=False)
    assert done.returncode == 2
    line = one_line_error(done)
    assert "'America/New_Yrok' is not an IANA time zone name" in line
    assert "did you mean 'America/New_York'?" in line


def test_a_data_directory_under_a_file_names_it_and_the_fix(tmp_path):
    (tmp_path / "afile").write_text("")
    done = run_cli(tmp_path, "server", "start", "--port", str(free_port()), "--data-dir",
                   str(tmp_path / "afile" / "data"))
    assert done.returncode == 2
    line = one_line_error(done)
    assert f"cannot create the data directory {tmp_path / 'afile' / 'data'}" in line
    assert "pass --data-dir with a directory this user can write" in line


def test_a_data_directory_this_user_cannot_write_is_refused(tmp_path, monkeypatch):
    # Root writes anywhere, so the permission is simulated; the check is the real one.
    from sluice.exceptions import ConfigurationError
    from sluice_functions.embedded import local_auth

    monkeypatch.setattr(local_auth.os, "access", lambda path, mode: False)
    with pytest.raises(ConfigurationError, match="is not writable by this user; fix its "
                                                 "permissions or pass --data-dir"):
        local_auth.secure_data_dir(tmp_path / "data")


# ---- deployment run later, with tags -------------------------------------------------------------

def test_run_start_in_and_tag_create_a_later_run(served):
    sluice, _ = served
    before = datetime.now(timezone.utc)
    done = sluice.cli("deployment", "run", "greet/g", "--start-in", "1h30m", "--tag", "manual",
                      "--json")
    run = json.loads(done.stdout)
    scheduled = datetime.fromisoformat(run["scheduled_at"])
    assert timedelta(minutes=89) < scheduled - before < timedelta(minutes=91)
    assert "manual" in run["tags"]
    assert run["state"]["type"] == "SCHEDULED"


def test_run_start_at_takes_an_iso_time(served):
    sluice, _ = served
    at = (datetime.now(timezone.utc) + timedelta(days=2)).replace(microsecond=0)
    run = sluice.cli_json("deployment", "run", "greet/g", "--start-at", at.isoformat())
    assert datetime.fromisoformat(run["scheduled_at"]) == at


@pytest.mark.parametrize("args, expected", [
    (("--start-in", "soon"), "--start-in 'soon' is not a duration; write e.g. 90s, 10m"),
    (("--start-in", "1h", "--start-at", "2030-01-01T00:00:00"),
     "--start-in and --start-at both say when to start: give one"),
])
def test_run_refuses_a_bad_start(served, args, expected):
    sluice, _ = served
    done = sluice.cli("deployment", "run", "greet/g", *args, check=False)
    assert done.returncode == 2
    assert expected in one_line_error(done)


# ---- schedules ------------------------------------------------------------------------------------

def test_schedules_are_added_listed_paused_resumed_and_removed(served):
    sluice, _ = served
    sluice.cli("deployment", "schedule", "add", "greet/g", "--cron", "0 2 * * *",
               "--timezone", "Europe/Berlin")
    sluice.cli("deployment", "schedule", "add", "greet/g", "--interval", "10m", "--id", "often")
    listed = sluice.cli("deployment", "schedule", "ls", "greet/g").stdout
    assert "every day at 02:00 Europe/Berlin" in listed and "often" in listed

    sluice.cli("deployment", "schedule", "pause", "greet/g", "often")
    schedules = sluice.cli_json("deployment", "schedule", "ls", "greet/g")
    assert [s["active"] for s in schedules] == [True, False]
    sluice.cli("deployment", "schedule", "resume", "greet/g", "2")
    assert [s["active"] for s in sluice.cli_json("deployment", "schedule", "ls", "greet/g")] \
        == [True, True]

    done = sluice.cli("deployment", "schedule", "rm", "greet/g", "3", check=False)
    assert done.returncode == 3
    assert "has no schedule '3' (it has 2)" in one_line_error(done)
    done = sluice.cli("deployment", "schedule", "add", "greet/g", "--interval", "1h", "--id",
                      "often", check=False)
    assert done.returncode == 4 and "already has a schedule 'often'" in one_line_error(done)

    sluice.cli("deployment", "schedule", "rm", "greet/g", "1")
    remaining = sluice.cli_json("deployment", "schedule", "ls", "greet/g")
    assert [(s["id"], s["interval_seconds"]) for s in remaining] == [("often", 600)]
    sluice.cli("deployment", "schedule", "rm", "greet/g", "often")
    assert sluice.cli_json("deployment", "schedule", "ls", "greet/g") == []


# ---- --watch and retry --watch -------------------------------------------------------------------

def test_watch_prints_logs_with_task_run_names_before_the_final_state(served):
    sluice, project = served
    sluice.start_worker("--pool", "default", name="watcher")
    done = sluice.cli("deployment", "run", "greet/g", "--param", "name=ada", "--watch",
                      timeout=120)
    lines = done.stdout.splitlines()
    final = max(i for i, line in enumerate(lines) if "Completed" in line)
    hello = next(i for i, line in enumerate(lines) if "hello ada" in line)
    shouting = next(line for line in lines if "shouting ada" in line)
    assert hello < final and final == len(lines) - 1
    assert "[shout-0]" in shouting or re.search(r"\[shout-\d+\]", shouting), shouting


def test_retry_watch_runs_a_failed_run_again_and_exits_by_its_outcome(served):
    sluice, project = served
    sluice.cli("deploy", "flows.py:flaky", "--name", "f", "--project-dir", str(project),
               cwd=project)
    if not any(w.popen.poll() is None for w in sluice.workers):
        sluice.start_worker("--pool", "default", name="retrier")
    failed = sluice.cli("deployment", "run", "flaky/f", "--watch", check=False, timeout=120)
    assert failed.returncode == 1
    run_id = re.search(r"flow run ([0-9a-f]{32})", failed.stdout).group(1)
    (project / "fixed").write_text("")
    again = sluice.cli("flow-run", "retry", run_id[-8:], "--watch", timeout=120)
    assert "is now Scheduled" in again.stdout or "is now" in again.stdout
    assert "(attempt 2)" in again.stdout and "Completed" in again.stdout.splitlines()[-1]


def test_flow_run_delete_removes_a_finished_run_and_refuses_a_waiting_one(served):
    sluice, _ = served
    later = sluice.cli_json("deployment", "run", "greet/g", "--start-in", "2h")
    done = sluice.cli("flow-run", "delete", later["id"][-8:], "--yes", check=False)
    assert done.returncode == 4
    assert "cancel it first (sluice flow-run cancel" in one_line_error(done)
    sluice.cli("flow-run", "cancel", later["id"][:20])  # a unique start of the id
    deleted = sluice.cli("flow-run", "delete", later["id"][-8:], "--yes")
    assert f"deleted flow run {later['id'][-8:]}" in deleted.stdout
    gone = sluice.cli("flow-run", "inspect", later["id"], check=False)
    assert gone.returncode == 3 and "no flow run matches" in one_line_error(gone)


# ---- pools ---------------------------------------------------------------------------------------

def test_pool_pause_resume_and_delete(served):
    sluice, _ = served
    sluice.cli("pool", "create", "scratch")
    assert "pool scratch paused" in sluice.cli("pool", "pause", "scratch").stdout
    assert sluice.cli_json("pool", "inspect", "scratch")["paused"] is True
    assert "pool scratch resumed" in sluice.cli("pool", "resume", "scratch").stdout
    assert "pool scratch deleted" in sluice.cli("pool", "delete", "scratch", "--yes").stdout
    done = sluice.cli("pool", "inspect", "scratch", check=False)
    assert done.returncode == 3


def test_deleting_a_pool_that_deployments_use_is_refused_with_the_fix(served):
    sluice, _ = served
    done = sluice.cli("pool", "delete", "default", "--yes", check=False)
    assert done.returncode == 4
    assert "--force" in one_line_error(done)


# ---- completion ------------------------------------------------------------------------------------

def test_shell_completion_completes_commands_and_subcommands(tmp_path):
    env = {**os.environ, "_SLUICE_COMPLETE": "complete_bash", "COMP_WORDS": "sluice deployment sch",
           "COMP_CWORD": "2", "SLUICE_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", "from sluice.cli import entrypoint; "
                           "entrypoint()"], env=env, capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["schedule"], done.stderr
    shown = run_cli(tmp_path, "--show-completion", "bash")
    assert shown.returncode == 0 and "_SLUICE_COMPLETE" in shown.stdout.upper()
