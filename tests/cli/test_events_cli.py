"""Issue 17: `sluice events ls|tail|emit` and `sluice.emit_event`, the real CLI against a real
embedded control plane (and a real worker for the run that emits its own event)."""

from __future__ import annotations

import json
import subprocess
import textwrap

import pytest

from tests.cli.served import served_project
from tests.e2e.harness import SLUICE, wait_for

FLOWS = textwrap.dedent('''
    import sluice
    from sluice import flow


    @flow
    def loader(key: str = "a.csv") -> str:
        sluice.emit_event("etl.file-loaded", payload={"key": key})
        return key
''')


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with served_project(tmp_path_factory.mktemp("cli-events"), FLOWS) as both:
        yield both


def test_an_emitted_event_is_listed_with_its_resource_and_payload(served):
    sluice, _ = served
    # When an operator emits an event about an object that landed
    done = sluice.cli("events", "emit", "etl.file-landed", "--resource",
                      "dataset:s3://bucket/in/a.csv", "--payload", '{"size": 12}')
    assert "emitted etl.file-landed" in done.stdout
    # Then `events ls` finds it by name and by resource
    by_name = sluice.cli_json("events", "ls", "--name", "etl.file-landed")
    assert [(e["name"], e["resource"], e["payload"]) for e in by_name] == [
        ("etl.file-landed", {"kind": "dataset", "id": "s3://bucket/in/a.csv", "name": None},
         {"size": 12})]
    by_resource = sluice.cli_json("events", "ls", "--resource", "s3://bucket/in/a.csv")
    assert [e["id"] for e in by_resource] == [by_name[0]["id"]]
    table = sluice.cli("events", "ls", "--name", "etl.file-landed", env={"COLUMNS": "200"})
    assert "etl.file-landed" in table.stdout and "1 event" in table.stdout


def test_control_plane_events_are_listed_too(served):
    sluice, _ = served
    sluice.cli("pool", "create", "events-pool")
    names = [e["name"] for e in sluice.cli_json("events", "ls", "--resource", "events-pool")]
    assert names == ["sluice.pool.created"]


def test_a_malformed_resource_or_payload_says_how_to_write_it(served):
    sluice, _ = served
    bad_resource = sluice.cli("events", "emit", "x.y", "--resource", "nokind", check=False)
    assert bad_resource.returncode != 0 and "KIND:ID" in bad_resource.stderr + bad_resource.stdout
    bad_payload = sluice.cli("events", "emit", "x.y", "--payload", "[1]", check=False)
    assert bad_payload.returncode != 0 and "JSON object" in (bad_payload.stderr
                                                             + bad_payload.stdout)


def test_tail_prints_events_emitted_after_it_started(served):
    sluice, _ = served
    # Given a tail waiting for one etl.tail event
    tail = subprocess.Popen([*SLUICE, "events", "tail", "--name", "etl.tail", "--count", "1",
                             "--json"], env=sluice.env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        # When events are emitted until it has printed one (it may start after the first)
        def tail_ended() -> bool:
            if tail.poll() is not None:
                return True
            sluice.cli("events", "emit", "etl.tail", "--resource", "test:tail")
            return False

        wait_for(tail_ended, 60, "sluice events tail to print an event", interval=0.5)
        out, err = tail.communicate(timeout=10)
    finally:
        if tail.poll() is None:
            tail.kill()
    # Then it printed exactly that event, as one JSON document, and stopped
    assert tail.returncode == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["name"] == "etl.tail"


def test_a_flow_emits_its_own_event_about_its_run(served):
    sluice, project = served
    # Given a deployment whose flow emits etl.file-loaded, and a worker
    sluice.cli("deploy", "flows.py:loader", "--name", "l", "--project-dir", str(project),
               cwd=project)
    worker = sluice.start_worker()
    try:
        run = json.loads(sluice.cli("deployment", "run", "loader/l", "--param", "key=b.csv",
                                    "--json").stdout)
        assert sluice.wait_terminal(run["id"])["state"]["type"] == "COMPLETED"
    finally:
        worker.stop()
    # Then the run's events hold its states and its own event, about the run
    events = sluice.cli_json("events", "ls", "--resource", run["id"], "--since", "1h")
    names = [e["name"] for e in events]
    assert names[0] == "sluice.flow-run.Scheduled" and names[-1] == "sluice.flow-run.Completed"
    mine = [e for e in events if e["name"] == "etl.file-loaded"]
    assert len(mine) == 1 and mine[0]["payload"] == {"key": "b.csv"}
    assert mine[0]["resource"]["id"] == run["id"]
    assert {"kind": "pool", "id": "default", "name": None} in mine[0]["related"]


def test_user_code_cannot_emit_the_control_planes_names(served):
    sluice, _ = served
    # A pool's route is what flow processes use; their names under sluice. are refused
    with sluice.api() as api:
        answer = api.post("/pools/default/events", json={"events": [
            {"name": "sluice.flow-run.Failed", "resource": {"kind": "x", "id": "y"}}]})
    assert answer.status_code == 422
    assert "the control plane's own" in answer.json()["message"]
