"""The run page's Suspend and Resume buttons (issue 17), in Chromium against an embedded server
without a worker: the run waits in Scheduled, so it can be suspended and resumed at leisure."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from e2e.harness import Sluice, free_port, wait_for

from .test_console_browser import open_console
from .world import ConsoleWorld


@pytest.fixture(scope="module")
def world(browser, tmp_path_factory) -> Iterator[ConsoleWorld]:
    """A server (no worker) with one deployment; lighter than the populated console world."""
    root = tmp_path_factory.mktemp("console-suspend")
    sluice = Sluice(root / "home", free_port())
    try:
        sluice.start_server()
        world = ConsoleWorld(sluice, root)
        world.deploy("long_backfill", "manual")
        yield world
    finally:
        sluice.close()


def test_suspend_then_resume_from_the_run_page(world, page):
    # Given a run waiting for a worker
    run_id = world.trigger("long-backfill/manual", {"seconds": 1})
    run = open_console(page, world, f"/ui/runs/{run_id}", "run")
    assert run.get_by_test_id("resume-run").count() == 0  # nothing to resume yet
    # When Suspend is pressed
    run.get_by_test_id("suspend-run").click()
    # Then the API suspends it, and the page shows Suspended with a Resume button instead
    wait_for(lambda: world.state(run_id)["name"] == "Suspended", 30, "the run to be suspended")
    assert world.state(run_id)["message"] == "suspended from the console"
    wait_for(lambda: run.get_by_test_id("run-state").first.inner_text() == "Suspended", 30,
             "the page to show Suspended")
    run.get_by_test_id("resume-run").wait_for()
    assert run.get_by_test_id("suspend-run").count() == 0
    # When Resume is pressed, Then it waits in Scheduled again
    run.get_by_test_id("resume-run").click()
    wait_for(lambda: world.state(run_id)["type"] == "SCHEDULED", 30, "the run to be resumed")
    run.get_by_test_id("suspend-run").wait_for()
    assert page.script_errors == []
