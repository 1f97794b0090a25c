"""From `sluice deploy` to a run on a real worker process (issue: workers and deployments)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from .harness import created_id, wait_for

pytestmark = pytest.mark.e2e
PROJECT = Path(__file__).parent / "project"


def deploy(sluice, flow: str, name: str, *extra: str, project: Path = PROJECT) -> None:
    sluice.cli("deploy", f"flows.py:{flow}", "--name", name, "--project-dir", str(project),
               *extra)


def trigger(sluice, ref: str, **params) -> str:
    args = [f"--param={k}={json.dumps(v) if not isinstance(v, str) else v}"
            for k, v in params.items()]
    return created_id(sluice.cli("deployment", "run", ref, *args).stdout)


def ledger_lines(path: Path) -> list[tuple[str, str, float, int]]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        event, run_id, at, pid = line.split()
        rows.append((event, run_id, float(at), int(pid)))
    return rows


def test_deploy_run_watch_completed_with_logs(sluice, tmp_path):
    ledger = tmp_path / "ledger"
    deploy(sluice, "ledger_flow", "local")
    sluice.start_worker()
    # When the deployment runs with --watch, Then it streams states and logs and exits 0
    watched = sluice.cli("deployment", "run", "ledger-flow/local", f"--param=ledger={ledger}",
                         "--param=n=4", "--watch", timeout=90)
    assert "Completed" in watched.stdout
    assert "squaring 4 numbers" in watched.stdout and "stdout line from the flow" in watched.stdout
    run_id = created_id(watched.stdout)
    detail = sluice.cli_json("flow-run", "inspect", run_id)
    assert detail["flow_run"]["state"]["type"] == "COMPLETED"
    assert len(detail["task_runs"]) == 4
    assert [s["name"] for s in detail["history"]][:3] == ["Scheduled", "Pending", "Running"]
    assert [e for e, *_ in ledger_lines(ledger)] == ["start", "end"]


def test_failing_flow_exit_code_and_message(sluice):
    deploy(sluice, "failing_flow", "fails")
    sluice.start_worker()
    watched = sluice.cli("deployment", "run", "failing-flow/fails", "--watch", check=False,
                         timeout=90)
    assert watched.returncode == 1
    assert "this flow fails on purpose" in watched.stdout


def test_bad_parameter_is_refused_at_trigger_time(sluice, tmp_path):
    deploy(sluice, "ledger_flow", "local")
    refused = sluice.cli("deployment", "run", "ledger-flow/local", "--param=n=lots",
                         f"--param=ledger={tmp_path}", check=False)
    assert refused.returncode == 2
    assert "n" in refused.stderr and "integer" in refused.stderr
    missing = sluice.cli("deployment", "run", "ledger-flow/local", check=False)
    assert missing.returncode == 2 and "ledger" in missing.stderr
    assert sluice.cli_json("flow-run", "ls") == []  # nothing was created


def test_git_source(sluice, tmp_path):
    repo = tmp_path / "repo"
    (repo / "pipelines").mkdir(parents=True)
    (repo / "pipelines" / "flows.py").write_text((PROJECT / "flows.py").read_text())
    git = ["git", "-C", str(repo), "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "flows"], check=True)
    sluice.cli("deploy", "flows.py:ledger_flow", "--name", "from-git", "--source", "git",
               "--repository", f"file://{repo}", "--ref", "main", "--subdirectory",
               "pipelines", "--project-dir", str(PROJECT))
    sluice.start_worker()
    ledger = tmp_path / "ledger"
    run_id = trigger(sluice, "ledger-flow/from-git", ledger=str(ledger))
    assert sluice.wait_terminal(run_id, 90)["state"]["type"] == "COMPLETED"
    assert len(ledger_lines(ledger)) == 2


def test_cancel_while_running_stops_the_process(sluice, tmp_path):
    deploy(sluice, "slow_flow", "slow")
    sluice.start_worker()
    pid_file = tmp_path / "pid"
    run_id = trigger(sluice, "slow-flow/slow", pid_file=str(pid_file))
    pid = int(wait_for(lambda: pid_file.exists() and pid_file.read_text(), 60, "the flow"))
    sluice.cli("flow-run", "cancel", run_id)
    final = sluice.wait_terminal(run_id, 60)
    assert final["state"]["type"] == "CANCELLED"
    wait_for(lambda: not _alive(pid), 15, "the flow process to be gone")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes.
    try:
        return Path(f"/proc/{pid}/status").read_text().find("State:\tZ") < 0
    except OSError:
        return False


def test_process_exit_is_reported_crashed_with_its_exit_code(sluice):
    deploy(sluice, "crash_flow", "crash")
    sluice.start_worker()
    run_id = trigger(sluice, "crash-flow/crash")
    final = sluice.wait_terminal(run_id, 60)
    assert final["state"]["type"] == "CRASHED"
    assert "exited with code 3" in final["state"]["message"]
    assert final["state"]["details"]["exit_code"] == 3


def test_a_message_delivered_twice_runs_the_flow_once(sluice, tmp_path):
    import boto3

    deploy(sluice, "ledger_flow", "local")
    ledger = tmp_path / "ledger"
    run_id = trigger(sluice, "ledger-flow/local", ledger=str(ledger))
    # Given a second copy of the run's message in the queue
    profile = sluice.cli_json("profile", "show")
    sqs = boto3.client("sqs", endpoint_url=profile["sqs_endpoint"], region_name="us-east-1",
                       aws_access_key_id="sluice", aws_secret_access_key=sluice.token)
    url = sqs.get_queue_url(QueueName="default")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(
        {"flow_run_id": run_id, "pool": "default", "attempt": 0}))
    # When a worker takes both messages
    sluice.start_worker()
    assert sluice.wait_terminal(run_id, 60)["state"]["type"] == "COMPLETED"
    wait_for(lambda: sluice.cli_json("pool", "inspect", "default")["queue_depth"] == 0, 30,
             "the duplicate to be dropped")
    # Then the flow body ran once
    assert [e for e, *_ in ledger_lines(ledger)] == ["start", "end"]


def test_limit_two_never_runs_more_than_two_at_once(sluice, tmp_path):
    deploy(sluice, "ledger_flow", "local")
    ledger = tmp_path / "ledger"
    runs = [trigger(sluice, "ledger-flow/local", ledger=str(ledger), pause=0.6)
            for _ in range(6)]
    sluice.start_worker("--limit", "2")
    for run_id in runs:
        assert sluice.wait_terminal(run_id, 120)["state"]["type"] == "COMPLETED"
    events = sorted((at, 1 if event == "start" else -1) for event, _, at, _ in
                    ledger_lines(ledger))
    running = peak = 0
    for _, change in events:
        running += change
        peak = max(peak, running)
    assert peak == 2  # the limit was reached and never passed


def test_sigterm_lets_a_running_run_finish(sluice, tmp_path):
    deploy(sluice, "ledger_flow", "local")
    ledger = tmp_path / "ledger"
    worker = sluice.start_worker("--shutdown-grace", "20")
    run_id = trigger(sluice, "ledger-flow/local", ledger=str(ledger), pause=2)
    wait_for(lambda: ledger_lines(ledger), 60, "the run to start")
    # When the worker gets SIGTERM mid-run, Then the run finishes and the worker exits 0
    worker.send_signal(signal.SIGTERM)
    assert worker.popen.wait(60) == 0, worker.output()
    assert sluice.wait_terminal(run_id, 10)["state"]["type"] == "COMPLETED"
    # And a run created after it stopped stays queued for the next worker
    later = trigger(sluice, "ledger-flow/local", ledger=str(ledger))
    time.sleep(1)
    assert sluice.run_state(later)["state"]["type"] == "SCHEDULED"


def test_sigterm_past_the_grace_period_stops_the_run(sluice, tmp_path):
    deploy(sluice, "slow_flow", "slow")
    worker = sluice.start_worker("--shutdown-grace", "1")
    pid_file = tmp_path / "pid"
    run_id = trigger(sluice, "slow-flow/slow", pid_file=str(pid_file))
    pid = int(wait_for(lambda: pid_file.exists() and pid_file.read_text(), 60, "the flow"))
    worker.send_signal(signal.SIGTERM)
    assert worker.popen.wait(60) == 0, worker.output()
    final = sluice.wait_terminal(run_id, 10)
    assert final["state"]["type"] == "CRASHED" and "shut down" in final["state"]["message"]
    assert not _alive(pid)


def test_bundle_source_is_uploaded_and_cached_by_hash(sluice, tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "flows.py").write_text((PROJECT / "flows.py").read_text())
    (project / "secret.env").write_text("TOKEN=do-not-ship")
    (project / ".sluiceignore").write_text("*.env\n")
    deploy(sluice, "ledger_flow", "bundled", "--source", "bundle", project=project)
    detail = sluice.cli_json("deployment", "inspect", "ledger-flow/bundled")
    digest = detail["deployment"]["source"]["bundle_sha256"]
    assert len(digest) == 64
    # When a worker (with its own cache) runs it, Then the code comes from the bundle
    cache = tmp_path / "cache"
    sluice.start_worker("--cache-dir", str(cache))
    ledger = tmp_path / "ledger"
    run_id = trigger(sluice, "ledger-flow/bundled", ledger=str(ledger))
    assert sluice.wait_terminal(run_id, 90)["state"]["type"] == "COMPLETED"
    unpacked = cache / "bundles" / digest
    assert (unpacked / "flows.py").is_file() and not (unpacked / "secret.env").exists()
    # And deploying the same files again reuses the same bundle
    deploy(sluice, "ledger_flow", "bundled", "--source", "bundle", project=project)
    again = sluice.cli_json("deployment", "inspect", "ledger-flow/bundled")
    assert again["deployment"]["source"]["bundle_sha256"] == digest


def test_pool_shows_its_workers_online(sluice):
    sluice.cli("pool", "create", "etl", "--concurrency", "3")
    sluice.start_worker("--pool", "etl", name="etl-worker-1")

    def online():
        pool = sluice.cli_json("pool", "inspect", "etl")
        return [w for w in pool["workers"] if w["name"] == "etl-worker-1" and w["online"]]

    (worker,) = wait_for(online, 30, "the worker to show up online")
    assert worker["slots"] == 4 and worker["version"]
    table = sluice.cli("pool", "ls").stdout
    assert "etl" in table and "1/1" in table


def test_requirements_are_installed_into_a_cached_venv(sluice, tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "flows.py").write_text((PROJECT / "flows.py").read_text())
    (project / "requirements.txt").write_text("six==1.16.0\n")
    deploy(sluice, "needs_six", "with-reqs", "--requirements", "requirements.txt",
           project=project)
    cache = tmp_path / "cache"
    sluice.start_worker("--cache-dir", str(cache))
    ledger = tmp_path / "ledger"
    first = trigger(sluice, "needs-six/with-reqs", ledger=str(ledger))
    assert sluice.wait_terminal(first, 240)["state"]["type"] == "COMPLETED"
    second = trigger(sluice, "needs-six/with-reqs", ledger=str(ledger))
    assert sluice.wait_terminal(second, 60)["state"]["type"] == "COMPLETED"
    assert [e for e, *_ in ledger_lines(ledger)] == ["six-1.16.0", "six-1.16.0"]
    venvs = list((cache / "venvs").iterdir())
    assert len(venvs) == 1 and (venvs[0] / ".complete").exists()  # built once, then reused


def test_a_run_waiting_for_a_concurrency_slot_never_reaches_the_dead_letter_queue(sluice,
                                                                                   tmp_path):
    """Given a deployment that runs one at a time, in a pool whose messages dead-letter after
    two deliveries, when a second run waits through several refused claims for the first, then
    it starts as soon as the slot frees, as its first attempt, and nothing is dead-lettered."""
    from sluice_functions.adapters.sqlite import SqliteRunQueue

    ledger = tmp_path / "ledger"
    deploy(sluice, "ledger_flow", "one-at-a-time", "--concurrency-limit", "1")
    queue = SqliteRunQueue(sluice.home / "server" / "queue.db")
    queue.create_pool_queue("default", max_receive_count=2)
    queue.close()
    sluice.start_worker("--limit", "2")
    first = trigger(sluice, "ledger-flow/one-at-a-time", ledger=str(ledger), pause=14)
    wait_for(lambda: ledger_lines(ledger), 30, "the first run to start")
    second = trigger(sluice, "ledger-flow/one-at-a-time", ledger=str(ledger))
    # refused claims every 5 s for about 14 s: more deliveries than the pool allows one message
    assert sluice.wait_terminal(first, 60)["state"]["type"] == "COMPLETED"
    waited = sluice.wait_terminal(second, 30)
    assert waited["state"]["type"] == "COMPLETED" and waited["run_count"] == 1, waited
    assert sluice.cli_json("pool", "inspect", "default")["dlq_depth"] == 0
    events = [(event, run_id) for event, run_id, *_ in ledger_lines(ledger)]
    assert events == [("start", first), ("end", first), ("start", second), ("end", second)]


def test_a_flow_that_cannot_be_loaded_fails_with_the_reason(sluice, tmp_path):
    # Given a deployment whose code breaks after it was deployed
    project = tmp_path / "project"
    project.mkdir()
    (project / "flows.py").write_text((PROJECT / "flows.py").read_text())
    deploy(sluice, "ledger_flow", "breaks", project=project)
    (project / "flows.py").write_text("raise RuntimeError('broken on purpose')\n")
    sluice.start_worker()
    # When it runs, Then it is Failed (its own fault, not a crash), naming the entrypoint
    run_id = trigger(sluice, "ledger-flow/breaks", ledger=str(tmp_path / "ledger"))
    final = sluice.wait_terminal(run_id, 60)
    assert final["state"]["type"] == "FAILED", final
    assert final["state"]["message"] == (
        "could not load flows.py:ledger_flow: RuntimeError: broken on purpose")
