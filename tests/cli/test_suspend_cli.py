"""`sluice flow-run suspend|resume` and an automation file with the suspend action, against a
real embedded control plane (no worker: the runs wait in the future)."""

from __future__ import annotations

import textwrap

import pytest

from tests.cli.served import served_project
from tests.cli.test_mistakes import one_line_error

FLOWS = textwrap.dedent('''
    from sluice import flow


    @flow
    def greet(name: str = "world") -> str:
        return name
''')


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with served_project(tmp_path_factory.mktemp("cli-suspend"), FLOWS) as (sluice, project):
        sluice.cli("deploy", "flows.py:greet", "--name", "g", "--project-dir", str(project),
                   cwd=project)
        yield sluice, project


def test_suspend_and_resume_a_waiting_run_by_its_short_id(served):
    sluice, _ = served
    # Given a run due in two hours
    later = sluice.cli_json("deployment", "run", "greet/g", "--start-in", "2h")
    short = later["id"][-8:]
    # When it is suspended with a reason
    done = sluice.cli("flow-run", "suspend", short, "-m", "waiting for the vendor")
    # Then the CLI says what it is now and how to undo it
    assert f"suspend: run {short}" in done.stdout and "is now Suspended" in done.stdout
    assert f"resume it with: sluice flow-run resume {short}" in done.stdout
    shown = sluice.cli_json("flow-run", "inspect", later["id"])["flow_run"]["state"]
    assert (shown["name"], shown["message"]) == ("Suspended", "waiting for the vendor")
    # When it is resumed, Then it is Scheduled again
    resumed = sluice.cli("flow-run", "resume", short)
    assert "is now Scheduled" in resumed.stdout


def test_resume_of_a_run_that_is_not_suspended_and_suspend_of_a_finished_run_are_refused(served):
    sluice, _ = served
    later = sluice.cli_json("deployment", "run", "greet/g", "--start-in", "2h")
    not_suspended = sluice.cli("flow-run", "resume", later["id"], check=False)
    assert not_suspended.returncode != 0
    assert "only a suspended run can be resumed" in one_line_error(not_suspended)
    sluice.cli("flow-run", "cancel", later["id"])
    finished = sluice.cli("flow-run", "suspend", later["id"], check=False)
    assert finished.returncode != 0 and "terminal" in one_line_error(finished)


def test_an_automation_file_may_suspend_runs(served, tmp_path):
    sluice, _ = served
    spec = tmp_path / "hold.yaml"
    spec.write_text("name: hold on failure\n"
                    "trigger: {type: reactive, match: {names: [sluice.flow-run.Failed]}}\n"
                    "actions: [{type: suspend-flow-run, run: 'abc', message: 'upstream failed'},"
                    " {type: resume-run, run: 'def'}]\n")
    created = sluice.cli("automation", "create", "--file", str(spec), "--json")
    assert "suspend-flow-run" in created.stdout and "resume-run" in created.stdout
