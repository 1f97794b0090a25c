"""Issue 16, the console's back end on the embedded server: its files under /ui/ (no auth, safe
headers, no way out of the assets directory), and the overview routes `/stats/flow-runs` and
`/stats/deployments` plus the `tag` and `parent_flow_run_id` filters, on the SQLite store."""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from sluice import tokens
from sluice.client import SluiceClient
from sluice.console_files import ASSETS_ENV
from sluice.exceptions import ValidationError
from sluice.models import Deployment, FlowRun, Schedule, State, StateType
from sluice.models.states import Late
from sluice.profiles import Connection
from sluice_functions.embedded.server import EmbeddedServer

OPERATOR = tokens.new_operator_token()
DAY = datetime(2026, 3, 2, tzinfo=UTC)
INDEX = b"<!doctype html><title>Sluice</title><script type=module src=/ui/assets/app-3f2a.js>"
SCRIPT = b"console.log('sluice')"


@pytest.fixture
def assets(tmp_path, monkeypatch) -> Path:
    """A built console: index.html and one hashed script, with a secret next to the directory."""
    root = tmp_path / "console_assets"
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_bytes(INDEX)
    (root / "assets" / "app-3f2a.js").write_bytes(SCRIPT)
    (tmp_path / "secret.txt").write_text("do not serve me")
    monkeypatch.setenv(ASSETS_ENV, str(root))
    return root


@pytest.fixture
def server(tmp_path) -> Iterator[EmbeddedServer]:
    plane = EmbeddedServer(data_dir=tmp_path / "data", port=0, token=OPERATOR,
                           tick_seconds=3600).start()
    yield plane
    plane.stop()


@pytest.fixture
def anonymous(server) -> Iterator[httpx.Client]:
    """A client without credentials, as a browser that has not signed in."""
    with httpx.Client(base_url=server.url, follow_redirects=False) as client:
        yield client


@pytest.fixture
def api(server) -> Iterator[SluiceClient]:
    with SluiceClient(Connection(server.url, OPERATOR), attempts=1) as client:
        yield client


def raw_get(server: EmbeddedServer, path: str) -> tuple[int, bytes]:
    """GET with the path sent byte for byte (httpx would normalise `..`)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request("GET", path)
        answer = conn.getresponse()
        return answer.status, answer.read()
    finally:
        conn.close()


# ---- static files ------------------------------------------------------------------------------

def test_the_console_page_is_served_without_a_token_with_strict_headers(assets, anonymous):
    # When a anonymous without a token opens the console
    answer = anonymous.get("/ui/")
    # Then it gets the app's page, never cached stale, with the security headers
    assert answer.status_code == 200 and answer.content == INDEX
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    assert answer.headers["cache-control"] == "no-cache"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["x-frame-options"] == "DENY"
    csp = answer.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "connect-src 'self'" in csp
    assert "script-src 'self';" in csp and "unsafe-inline" not in csp.split("script-src")[1][:20]


def test_hashed_files_are_cached_forever_with_their_content_type(assets, anonymous):
    answer = anonymous.get("/ui/assets/app-3f2a.js")
    assert answer.status_code == 200 and answer.content == SCRIPT
    assert answer.headers["content-type"] == "text/javascript; charset=utf-8"
    assert answer.headers["cache-control"] == "public, max-age=31536000, immutable"


def test_deep_links_get_the_app_and_missing_build_files_are_404(assets, anonymous):
    # A page of the app (a run's detail) is the app's index.html, query string and all
    deep = anonymous.get("/ui/runs/0190a0b1-c2d3?tab=logs")
    assert deep.status_code == 200 and deep.content == INDEX
    # A missing script is missing: the anonymous must not get HTML to run as JavaScript
    missing = anonymous.get("/ui/assets/gone-1234.js")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"


@pytest.mark.parametrize("path", ["/ui/../secret.txt", "/ui/%2e%2e/secret.txt",
                                  "/ui/assets/..%2f..%2fsecret.txt", "/ui/..%5csecret.txt",
                                  "/ui/assets/%00.js"])
def test_paths_leaving_the_assets_directory_are_refused(assets, server, path):
    status, body = raw_get(server, path)
    assert b"do not serve me" not in body
    assert status in (400, 401, 403, 404)


def test_the_root_redirects_to_the_console_and_the_api_still_needs_its_token(assets, anonymous):
    root = anonymous.get("/")
    assert root.status_code == 302 and root.headers["location"] == "/ui/"
    # The API is unchanged: without the token, 401 with the API's JSON error
    listed = anonymous.get("/flow-runs")
    assert listed.status_code == 401 and listed.json()["error"] == "unauthorized"


def test_only_get_and_head_reach_the_console_files(assets, anonymous):
    assert anonymous.head("/ui/").status_code == 200
    posted = anonymous.post("/ui/", json={})
    assert posted.status_code == 405 and "use GET" in posted.json()["message"]


def test_a_server_whose_console_was_not_built_says_how_to_build_it(tmp_path, monkeypatch,
                                                                  anonymous):
    # Given no built console
    monkeypatch.setenv(ASSETS_ENV, str(tmp_path / "nothing-here"))
    # When the console is opened
    answer = anonymous.get("/ui/")
    # Then a small page names the fix
    assert answer.status_code == 503
    assert "make console" in answer.text and "text/html" in answer.headers["content-type"]


# ---- /stats/flow-runs --------------------------------------------------------------------------

def add_run(server: EmbeddedServer, at: datetime, state: State | StateType, *,
            flow: str = "etl", deployment_id: str | None = None, **fields) -> FlowRun:
    if isinstance(state, StateType):
        state = State(type=state, timestamp=at)
    run = FlowRun(id=f"run-{at:%H%M%S}-{flow}-{state.type.value}-{len(fields)}", flow_name=flow,
                  deployment_id=deployment_id, pool="default", state=state, scheduled_at=at,
                  **fields)
    return server.ports.store.create_flow_run(run)


def test_runs_are_counted_per_hour_and_state_within_the_window(server, api):
    # Given runs around a three-hour window 10:00-13:00
    at = lambda h, m, s=0: DAY.replace(hour=h, minute=m, second=s)  # noqa: E731
    add_run(server, at(9, 59, 59), StateType.COMPLETED)  # before the window
    add_run(server, at(10, 0), StateType.COMPLETED)
    add_run(server, at(10, 50), StateType.FAILED)
    add_run(server, at(11, 10), StateType.COMPLETED)
    add_run(server, at(12, 59, 59), StateType.RUNNING)
    add_run(server, at(13, 0), StateType.FAILED)  # the window's end is exclusive
    # When the console asks for hourly counts
    stats = api.flow_run_stats(since=at(10, 0), until=at(13, 0), bucket_seconds=3600)
    # Then each bucket holds exactly its runs, empty states absent
    assert [(b["start"], b["counts"]) for b in stats["buckets"]] == [
        ("2026-03-02T10:00:00Z", {"COMPLETED": 1, "FAILED": 1}),
        ("2026-03-02T11:00:00Z", {"COMPLETED": 1}),
        ("2026-03-02T12:00:00Z", {"RUNNING": 1}),
    ]
    assert stats["totals"] == {"COMPLETED": 2, "FAILED": 1, "RUNNING": 1}
    assert stats["late"] == 0 and stats["truncated"] is False


def test_empty_buckets_are_present_and_the_window_is_rounded_to_bucket_edges(server, api):
    add_run(server, DAY.replace(hour=3, minute=7), StateType.CRASHED)
    stats = api.flow_run_stats(since=DAY.replace(hour=0, minute=30),
                               until=DAY.replace(hour=5, minute=10), bucket_seconds=3600)
    assert stats["since"] == "2026-03-02T00:00:00Z" and stats["until"] == "2026-03-02T06:00:00Z"
    assert [b["counts"] for b in stats["buckets"]] == [{}, {}, {}, {"CRASHED": 1}, {}, {}]


def test_counts_follow_the_flow_and_deployment_filters_and_late_runs_are_counted(server, api):
    # Given a deployment's runs (one of them Late) and another flow's run
    deployment = server.ports.store.upsert_deployment(Deployment(
        id="dep-1", flow_name="etl", name="nightly", entrypoint="flows.py:etl"))
    at = DAY.replace(hour=2)
    add_run(server, at, Late(scheduled_time=at), deployment_id=deployment.id)
    add_run(server, at, StateType.COMPLETED, deployment_id=deployment.id)
    add_run(server, at, StateType.COMPLETED, flow="ml")
    window = {"since": DAY, "until": DAY + timedelta(days=1), "bucket_seconds": 86400}
    # When counted per deployment (by name), per flow, and overall
    by_deployment = api.flow_run_stats(deployment_id="etl/nightly", **window)
    by_flow = api.flow_run_stats(flow_name="ml", **window)
    overall = api.flow_run_stats(**window)
    # Then
    assert by_deployment["totals"] == {"COMPLETED": 1, "SCHEDULED": 1}
    assert by_deployment["late"] == 1
    assert by_flow["totals"] == {"COMPLETED": 1} and by_flow["late"] == 0
    assert overall["totals"] == {"COMPLETED": 2, "SCHEDULED": 1} and overall["late"] == 1


@pytest.mark.parametrize(("query", "field"), [
    ({"bucket_seconds": 60}, "bucket_seconds"),
    ({"since": DAY - timedelta(days=40), "until": DAY}, "since"),
    ({"since": DAY, "until": DAY - timedelta(hours=1)}, "since"),
    ({"since": DAY - timedelta(days=30), "until": DAY, "bucket_seconds": 300},
     "bucket_seconds"),
])
def test_windows_and_buckets_out_of_bounds_are_refused_naming_the_field(api, query, field):
    with pytest.raises(ValidationError) as refused:
        api.flow_run_stats(**query)
    assert refused.value.status_code == 422
    assert field in str(refused.value)


# ---- /flow-runs filters ------------------------------------------------------------------------

def test_runs_are_listed_by_tags_all_of_them_and_by_parent(server, api):
    at = DAY.replace(hour=4)
    parent = add_run(server, at, StateType.RUNNING, tags=["nightly", "eu"])
    add_run(server, at + timedelta(minutes=1), StateType.RUNNING, tags=["nightly"])
    child = add_run(server, at + timedelta(minutes=2), StateType.COMPLETED, flow="child",
                    parent_flow_run_id=parent.id)
    assert [r.id for r in api.list_flow_runs(tags=["nightly", "eu"]).items] == [parent.id]
    assert len(api.list_flow_runs(tags=["nightly"]).items) == 2
    assert [r.id for r in api.list_flow_runs(parent_flow_run_id=parent.id).items] == [child.id]
    assert api.list_flow_runs(parent_flow_run_id=child.id).items == []


# ---- /stats/deployments ------------------------------------------------------------------------

def test_deployments_come_with_schedules_in_words_next_runs_and_recent_runs(server, api):
    # Given a deployment on a Berlin cron schedule with three past runs, and a paused one
    store = server.ports.store
    store.upsert_deployment(Deployment(
        id="dep-berlin", flow_name="etl", name="nightly", entrypoint="flows.py:etl",
        schedules=[Schedule(id="night", cron="0 2 * * *", timezone="Europe/Berlin"),
                   Schedule(id="off", interval_seconds=20, active=False)],
        parameter_schema={"type": "object", "properties": {"day": {"type": "string"}}}))
    store.upsert_deployment(Deployment(
        id="dep-paused", flow_name="etl", name="paused", entrypoint="flows.py:etl",
        paused=True, schedules=[Schedule(cron="*/5 * * * *")]))
    for hours, state in ((3, StateType.COMPLETED), (2, StateType.FAILED),
                         (1, StateType.RUNNING)):
        add_run(server, datetime.now(UTC) - timedelta(hours=hours), state,
                deployment_id="dep-berlin")
    # When the console lists the deployments
    nightly, paused = api.deployment_stats()
    # Then the schedules are in words, the next runs come soonest first, recent runs newest first
    assert (nightly["flow_name"], nightly["name"], paused["name"]) == ("etl", "nightly", "paused")
    assert nightly["schedules"] == [
        {"id": "night", "description": "every day at 02:00 Europe/Berlin", "active": True},
        {"id": "off", "description": "every 20 seconds", "active": False}]
    assert len(nightly["next_runs"]) == 5 and nightly["next_runs"] == sorted(nightly["next_runs"])
    assert [r["state_type"] for r in nightly["recent"]] == ["RUNNING", "FAILED", "COMPLETED"]
    assert nightly["parameter_schema"]["properties"] == {"day": {"type": "string"}}
    # And a paused deployment has no next runs
    assert paused["paused"] is True and paused["next_runs"] == []
