"""The console in a real browser (issue 16): Debian's Chromium driven by Playwright against the
embedded server and a worker that ran flows in every interesting state (tests/console/world.py).
Each test opens a fresh browser context; the server is shared by the module, so the tests that
change something (cancel, retry, pause, run) act on their own runs and deployments."""

from __future__ import annotations

import os
import re
from typing import Any

import httpx
import pytest

from e2e.harness import SLUICE, Process, free_port, wait_for

from .world import ConsoleWorld

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PAGES = {"dashboard": "/ui/", "runs": "/ui/runs", "deployments": "/ui/deployments",
         "pools": "/ui/pools"}


def open_console(page: Any, world: ConsoleWorld, path: str, root: str) -> Any:
    """Open a console URL with the operator token in the fragment, as `sluice server start`
    prints it, and wait for the page's first data (`data-ready`). Returns the page root."""
    page.goto(world.page_url(path))
    return ready(page, root)


def ready(page: Any, root: str) -> Any:
    located = page.locator(f'[data-testid="page-{root}"][data-ready="true"]')
    located.wait_for(state="visible")
    return located


def api_error_message(response: httpx.Response) -> str:
    """The `message` of the API's JSON error body (what the console must show)."""
    assert response.status_code >= 400, response.text
    return response.json()["message"]


def row_of(page: Any, run_id: str) -> Any:
    return page.locator(f'[data-testid="run-row"][data-run-id="{run_id}"]')


# --- screenshots (SLUICE_CONSOLE_SCREENSHOTS=1) and the page shell ------------------------------


@pytest.mark.skipif(os.environ.get("SLUICE_CONSOLE_SCREENSHOTS", "") in ("", "0"),
                    reason="writes docs/console/*.png only with SLUICE_CONSOLE_SCREENSHOTS=1 "
                           "(or run `make screenshots`)")
def test_screenshots_of_every_page(world, context):
    from .screenshots import DOCS, take_screenshots

    written = take_screenshots(world, context, DOCS)
    assert sorted(p.name for p in written) == sorted(
        ["dashboard.png", "runs.png", "run.png", "deployments.png", "deployment.png",
         "pools.png"])


def test_static_files_need_no_token_and_root_redirects_to_the_console(world):
    # Given the embedded server, When a client without a token asks for the console's files
    response = httpx.get(f"{world.sluice.url}/ui/", timeout=10)
    # Then it gets the page (it holds no data), while the API still wants the token
    assert response.status_code == 200 and "text/html" in response.headers["content-type"]
    assert httpx.get(f"{world.sluice.url}/flow-runs", timeout=10).status_code == 401
    # And a deep link that is not a file answers the page too (the app routes it)
    deep = httpx.get(f"{world.sluice.url}/ui/runs/{world.runs['completed']}", timeout=10)
    assert deep.status_code == 200 and deep.text == response.text
    root = httpx.get(f"{world.sluice.url}/", timeout=10, follow_redirects=False)
    assert root.status_code == 302 and root.headers["location"].endswith("/ui/")


def test_every_page_loads_from_a_deep_link_without_script_errors(world, page):
    # Given a token taken from the fragment once
    open_console(page, world, "/ui/", "dashboard")
    assert "token=" not in page.url  # the fragment is removed from the address bar
    deep_links = {
        **PAGES,
        "run": f"/ui/runs/{world.runs['completed']}",
        "deployment": "/ui/deployments/nightly-etl/nightly",
        "pool": "/ui/pools/default",
    }
    for root, path in deep_links.items():
        # When each page is opened directly by its URL (no navigation inside the app)
        page.goto(f"{world.sluice.url}{path}")
        # Then it renders its data, with the token kept for the tab
        ready(page, root)
    assert page.script_errors == []


def test_without_a_token_the_sign_in_form_shows_the_api_message_and_accepts_a_token(world, page):
    refusal = api_error_message(httpx.get(f"{world.sluice.url}/flow-runs", timeout=10))
    # Given no token in the tab, When the runs page asks the API
    page.goto(f"{world.sluice.url}/ui/runs")
    # Then the API's refusal is shown with a way to paste a token
    page.get_by_test_id("error").filter(has_text=refusal).wait_for()
    token_input = page.locator('input[type="password"], input[name="token"]').first
    # When the operator pastes the token and signs in
    token_input.fill(world.token)
    token_input.press("Enter")
    # Then the page loads its data
    ready(page, "runs")
    assert row_of(page, world.runs["completed"]).count() == 1


# --- dashboard and runs list -------------------------------------------------------------------


def test_dashboard_shows_the_runs_chart_counts_and_next_runs(world, page):
    dashboard = open_console(page, world, "/ui/", "dashboard")
    chart = dashboard.get_by_test_id("runs-chart")
    assert chart.is_visible()
    assert chart.locator("canvas, svg").count() >= 1
    assert re.fullmatch(r"\s*\d+\s*", dashboard.get_by_test_id("late-count").inner_text())
    assert dashboard.get_by_test_id("crashed-count").inner_text().strip() == "0"
    # One failed run among the finished ones: the rate is above zero
    rate = re.search(r"\d+(\.\d+)?", dashboard.get_by_test_id("failure-rate").inner_text())
    assert rate and float(rate.group()) > 0
    # The hourly pricing schedule always has a run due within the hour
    assert "pricing" in dashboard.get_by_test_id("next-runs").inner_text()


def test_runs_list_shows_states_filters_by_state_and_tag_and_updates_live(world, page):
    runs = open_console(page, world, "/ui/runs", "runs")
    for role in ("completed", "failed", "retried", "running"):
        row_of(page, world.runs[role]).wait_for()
    assert row_of(page, world.runs["failed"]).get_by_test_id("run-state").inner_text() == \
        "Failed"
    assert row_of(page, world.runs["completed"]).get_by_test_id("run-state").inner_text() == \
        "Completed"

    # When a run starts while the list is open, Then it appears without a reload
    fresh = world.trigger("nightly-etl/nightly", {"batches": 1})
    row_of(page, fresh).wait_for(timeout=30_000)
    world.wait_state(fresh, {"COMPLETED"})

    # When the list is filtered by state in the URL, Then only those runs are shown
    page.goto(f"{world.sluice.url}/ui/runs?state=FAILED")
    runs = ready(page, "runs")
    row_of(page, world.runs["failed"]).wait_for()
    states = runs.get_by_test_id("run-state").all_inner_texts()
    assert states and set(states) == {"Failed"}

    # And by tag: the tagged nightly run, not the report
    page.goto(f"{world.sluice.url}/ui/runs?tag=nightly")
    ready(page, "runs")
    row_of(page, world.runs["completed"]).wait_for()
    assert row_of(page, world.runs["failed"]).count() == 0


# --- run detail --------------------------------------------------------------------------------


def test_run_detail_shows_task_bars_with_attempts_and_cached_tasks(world, page):
    run = open_console(page, world, f"/ui/runs/{world.runs['retried']}", "run")
    assert run.get_by_test_id("run-state").first.inner_text() == "Completed"
    bars = run.get_by_test_id("task-bar")
    bars.first.wait_for()
    named = [(bar.get_attribute("data-task-name"), bar) for bar in bars.all()]
    # The task that failed once and passed on its retry: one bar, two attempts
    retried = [bar for name, bar in named if name == "fetch_prices"]
    assert len(retried) == 1 and retried[0].get_attribute("data-attempts") == "2"
    # The task called twice with one cache key: computed once, then Cached
    cached_states = [bar.get_attribute("data-state") for name, bar in named
                     if name == "fx_rates"]
    assert sorted(cached_states) == ["Cached", "Completed"]


def test_run_detail_links_a_subflow_and_its_parent(world, page):
    parent_id = world.runs["parent"]
    with world.sluice.api() as api:
        children = api.get("/flow-runs", params={"parent_flow_run_id": parent_id}).json()
    [child] = children["items"]
    # The parent's page links to its subflow, and the subflow's page back to its parent
    open_console(page, world, f"/ui/runs/{parent_id}", "run")
    page.locator(f'a[href$="/runs/{child["id"]}"]').first.click()
    page.wait_for_url(f"**/ui/runs/{child['id']}")
    ready(page, "run").get_by_text(child["id"]).wait_for()
    page.locator(f'a[href$="/runs/{parent_id}"]').first.wait_for()


def test_run_logs_show_lines_and_filter_by_level_and_search(world, page):
    run = open_console(page, world, f"/ui/runs/{world.runs['completed']}?tab=logs", "run")
    lines = run.get_by_test_id("log-line")
    lines.filter(has_text="starting the nightly load").wait_for()
    assert lines.filter(has_text="extracting batch 2").count() == 1

    # When the level filter is set to warnings, Then info lines are hidden
    run.get_by_test_id("log-level").select_option("WARNING")
    lines.filter(has_text="rows loaded").wait_for()
    wait_for(lambda: lines.filter(has_text="extracting batch").count() == 0, 10,
             "info lines to be filtered out")

    # When the search is used (all levels again), Then only matching lines remain
    run.get_by_test_id("log-level").select_option(index=0)
    run.get_by_test_id("log-search").fill("batch 1")
    wait_for(lambda: lines.count() >= 1 and all(
        "batch 1" in text for text in lines.all_inner_texts()), 10, "the search to apply")


def test_cancel_button_cancels_the_long_run(world, page):
    run_id = world.runs["running"]
    run = open_console(page, world, f"/ui/runs/{run_id}", "run")
    # When Cancel is pressed on the running run
    run.get_by_test_id("cancel-run").click()
    # Then the API cancels it, and the page shows it
    world.wait_state(run_id, {"CANCELLED"}, timeout=60)
    wait_for(lambda: run.get_by_test_id("run-state").first.inner_text() == "Cancelled", 30,
             "the page to show Cancelled")


def test_retry_button_reruns_the_failed_run_once_fixed(world, page):
    run_id = world.runs["failed"]
    (world.data / "report-source").write_text("ready")  # the cause of the failure is fixed
    run = open_console(page, world, f"/ui/runs/{run_id}", "run")
    assert run.get_by_test_id("run-state").first.inner_text() == "Failed"
    run.get_by_test_id("retry-run").click()
    world.wait_state(run_id, {"COMPLETED"}, timeout=90)
    wait_for(lambda: run.get_by_test_id("run-state").first.inner_text() == "Completed", 30,
             "the page to show Completed")


def test_retry_of_a_completed_run_shows_the_api_refusal(world, page):
    run_id = world.runs["parent"]
    # The API refuses inside a 200 (status REJECT and a reason): ask it once for the reason
    with world.sluice.api() as api:
        answer = api.post(f"/flow-runs/{run_id}/retry").json()
    assert answer["status"] != "ACCEPT" and answer["reason"]
    run = open_console(page, world, f"/ui/runs/{run_id}", "run")
    # When Retry is pressed on a completed run, Then the page shows the API's reason
    run.get_by_test_id("retry-run").click()
    page.get_by_test_id("error").filter(has_text=answer["reason"]).wait_for()
    assert world.state(run_id)["type"] == "COMPLETED"


def test_a_refused_action_shows_the_api_message(world, page):
    # Given parameters the form's schema allows but the API refuses (over its 64 KiB limit)
    too_long = "x" * 70_000
    with world.sluice.api() as api:
        refusal = api_error_message(api.post(
            "/deployments/nightly-etl/nightly/runs",
            json={"parameters": {"batches": 1, "region": too_long}}))
    before = deployment_runs(world, "nightly-etl", "nightly")
    deployment = open_console(page, world, "/ui/deployments/nightly-etl/nightly", "deployment")
    # When the operator runs the deployment with them from the page
    deployment.get_by_test_id("run-deployment").click()
    form = page.get_by_test_id("run-form")
    form.locator('[name="param-batches"]').fill("1")
    form.locator('[name="param-region"]').fill(too_long)
    form.get_by_test_id("run-submit").click()
    # Then the API's own message is shown, and no run was made
    page.get_by_test_id("error").filter(has_text=refusal[:120]).wait_for()
    assert len(deployment_runs(world, "nightly-etl", "nightly")) == len(before)


# --- deployments and pools ---------------------------------------------------------------------


def deployment_runs(world: ConsoleWorld, flow: str, name: str) -> list[dict[str, Any]]:
    with world.sluice.api() as api:
        deployment = api.get(f"/deployments/{flow}/{name}").json()
        page = api.get("/flow-runs", params={"deployment_id": deployment["id"],
                                             "limit": 200}).json()
    return page["items"] if isinstance(page, dict) else page


def test_deployment_run_form_validates_then_starts_a_run(world, page):
    before = {run["id"] for run in deployment_runs(world, "nightly-etl", "nightly")}
    deployment = open_console(page, world, "/ui/deployments/nightly-etl/nightly", "deployment")
    assert "02:00" in deployment.inner_text() and "Europe/Berlin" in deployment.inner_text()
    deployment.get_by_test_id("run-deployment").click()
    form = page.get_by_test_id("run-form")
    # When a value that is not an integer is entered, Then the form refuses it before sending
    form.locator('[name="param-batches"]').fill("2.5")
    form.get_by_test_id("run-submit").click()
    assert form.is_visible()
    assert {run["id"] for run in deployment_runs(world, "nightly-etl", "nightly")} == before
    # When a valid value is entered, Then a run with it is created and runs
    form.locator('[name="param-batches"]').fill("2")
    form.locator('[name="param-region"]').fill("us-west-2")
    form.get_by_test_id("run-submit").click()
    created = wait_for(lambda: [run for run in deployment_runs(world, "nightly-etl", "nightly")
                                if run["id"] not in before], 30, "the run to be created")
    assert len(created) == 1
    assert created[0]["parameters"] == {"batches": 2, "region": "us-west-2"}
    world.wait_state(created[0]["id"], {"COMPLETED"})


def test_pause_and_resume_from_the_deployment_page(world, page):
    world.deploy("nightly_etl", "pausable", "--cron", "0 3 * * *")
    deployment = open_console(page, world, "/ui/deployments/nightly-etl/pausable",
                              "deployment")
    assert deployment.get_by_test_id("backfill-form").count() == 1

    def paused() -> bool:
        with world.sluice.api() as api:
            return api.get("/deployments/nightly-etl/pausable").json()["paused"]

    deployment.get_by_test_id("pause-deployment").click()
    wait_for(paused, 15, "the deployment to be paused")
    deployment.get_by_test_id("resume-deployment").click()
    wait_for(lambda: not paused(), 15, "the deployment to be resumed")
    deployment.get_by_test_id("pause-deployment").wait_for()


def test_pools_page_shows_the_pool_and_its_worker_online(world, page):
    pools = open_console(page, world, "/ui/pools", "pools")
    assert pools.locator('[data-testid="pool-row"][data-pool="default"]').count() == 1
    pool = open_console(page, world, "/ui/pools/default", "pool")
    worker = pool.get_by_test_id("worker-row").filter(has_text="console-worker")
    assert re.search(r"\bonline\b", worker.inner_text(), re.I)


# --- usability: keyboard, theme ----------------------------------------------------------------


def test_tab_reaches_the_main_navigation_and_enter_follows_a_link(world, page):
    open_console(page, world, "/ui/", "dashboard")
    focused_href = ""
    for _ in range(15):
        page.keyboard.press("Tab")
        focused_href = page.evaluate(
            "() => { const el = document.activeElement;"
            " return el && el.closest('nav') ? el.getAttribute('href') || '' : ''; }")
        if focused_href.rstrip("/").endswith("/runs"):
            break
    assert focused_href.rstrip("/").endswith("/runs"), "Tab never reached the Runs link"
    page.keyboard.press("Enter")
    ready(page, "runs")
    assert page.url.rstrip("/").endswith("/ui/runs")


#: The mean RGB channel (0-255) of the page's painted background: the first element, from the
#: body outwards, whose background is not transparent.
BACKGROUND_LIGHTNESS = """() => {
  for (const element of [document.body, document.documentElement]) {
    const rgba = getComputedStyle(element).backgroundColor.match(/[\\d.]+/g).map(Number);
    if (rgba.length < 4 || rgba[3] > 0) return (rgba[0] + rgba[1] + rgba[2]) / 3;
  }
  return 255;
}"""


def test_theme_toggle_switches_to_dark_and_is_remembered(world, page):
    # Given a system preference for light
    open_console(page, world, "/ui/", "dashboard")
    light = page.evaluate(BACKGROUND_LIGHTNESS)
    assert light > 160
    # When the toggle is pressed, Then the page turns dark
    page.get_by_test_id("theme-toggle").click()
    wait_for(lambda: page.evaluate(BACKGROUND_LIGHTNESS) < 100, 5, "a dark background")
    # And the choice outlives a reload
    page.reload()
    ready(page, "dashboard")
    assert page.evaluate(BACKGROUND_LIGHTNESS) < 100


def test_dark_is_the_default_when_the_system_prefers_it(world, browser):
    context = browser.new_context(color_scheme="dark")
    try:
        page = context.new_page()
        open_console(page, world, "/ui/", "dashboard")
        assert page.evaluate(BACKGROUND_LIGHTNESS) < 100
    finally:
        context.close()


# --- sluice ui: the local proxy ----------------------------------------------------------------


def start_proxy(world: ConsoleWorld, port: int) -> tuple[Process, str]:
    """`sluice ui --no-open` on the world's local profile; returns it and the URL it prints."""
    proxy = Process([*SLUICE, "ui", "--port", str(port), "--no-open"], world.sluice.env,
                    world.data / f"ui-{port}.log")
    url = wait_for(lambda: (lambda m: m.group() if m else None)(
        re.search(r"http://127\.0\.0\.1:\d+/ui/\?session=\S+", proxy.output())), 60,
        "sluice ui to print its URL")
    return proxy, url


def test_sluice_ui_proxy_serves_the_console_without_a_token_in_the_page(world, page):
    port = free_port()
    proxy, url = start_proxy(world, port)
    try:
        # When the printed URL is opened, Then the runs page loads with no token in the page
        page.goto(url)
        page.goto(f"http://127.0.0.1:{port}/ui/runs")
        ready(page, "runs")
        row_of(page, world.runs["completed"]).wait_for()
        stored = page.evaluate("() => JSON.stringify(Object.assign({}, sessionStorage,"
                               " localStorage))")
        assert world.token not in stored and world.token not in page.content()
        # And the proxy refuses calls without its cookie, and writes without the CSRF header
        assert httpx.get(f"http://127.0.0.1:{port}/flow-runs", timeout=10).status_code == 401
        cookies = {c["name"]: c["value"] for c in page.context.cookies()}
        refused = httpx.post(f"http://127.0.0.1:{port}/flow-runs/{world.runs['completed']}/"
                             "cancel", cookies=cookies, timeout=10)
        assert 400 <= refused.status_code < 500, refused.text
    finally:
        proxy.stop()
