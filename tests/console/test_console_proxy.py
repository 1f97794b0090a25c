"""Issue 16, `sluice ui`: the local proxy serves the console and forwards API calls signed with
the operator's credentials (the bearer token of a local profile, SigV4 for an AWS one), and
refuses what another web page could send it: no session cookie, a foreign Host, a change without
the console's header. The browser's own Cookie and Authorization never reach the API."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from sluice import tokens
from sluice.console_files import ASSETS_ENV
from sluice.console_proxy import COOKIE_NAME, ConsoleProxy
from sluice.profiles import Connection
from sluice_functions.embedded.server import EmbeddedServer

OPERATOR = tokens.new_operator_token()
INDEX = b"<!doctype html><title>Sluice</title>"


@pytest.fixture
def assets(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "console_assets"
    root.mkdir()
    (root / "index.html").write_bytes(INDEX)
    monkeypatch.setenv(ASSETS_ENV, str(root))
    return root


@pytest.fixture
def server(tmp_path) -> Iterator[EmbeddedServer]:
    plane = EmbeddedServer(data_dir=tmp_path / "data", port=0, token=OPERATOR,
                           tick_seconds=3600).start()
    yield plane
    plane.stop()


@pytest.fixture
def local_proxy(server) -> Iterator[ConsoleProxy]:
    """`sluice ui` for the local profile of a real embedded server."""
    with ConsoleProxy(Connection(server.url, OPERATOR, kind="local"), port=0) as proxy:
        yield proxy


@contextmanager
def signed_in(proxy: ConsoleProxy) -> Iterator[httpx.Client]:
    """A browser that opened the sign-in link (and so holds the session cookie)."""
    with httpx.Client(base_url=proxy.url, follow_redirects=False) as client:
        answer = client.get(proxy.sign_in_url)
        assert answer.status_code == 302, answer.text
        yield client


# ---- against a real embedded server ------------------------------------------------------------

def test_the_sign_in_link_sets_a_strict_http_only_cookie_and_redirects(local_proxy, assets):
    with httpx.Client(base_url=local_proxy.url, follow_redirects=False) as browser:
        answer = browser.get(local_proxy.sign_in_url)
        assert answer.status_code == 302 and answer.headers["location"] == "/ui/"
        cookie = answer.headers["set-cookie"]
        assert cookie.startswith(f"{COOKIE_NAME}={local_proxy.session};")
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
        # And the console's page follows, from the proxy itself
        page = browser.get("/ui/")
        assert page.status_code == 200 and page.content == INDEX
        assert page.headers["x-frame-options"] == "DENY"


def test_a_signed_in_browser_reads_and_changes_through_the_proxy_with_the_token_added(
        local_proxy, server):
    # Given a browser signed in to the proxy (it holds no token)
    with signed_in(local_proxy) as browser:
        # When it lists runs and creates a pool through the proxy
        listed = browser.get("/flow-runs", params={"limit": 5})
        created = browser.post("/pools", json={"name": "console"},
                               headers={"x-sluice-console": "1"})
    # Then the server accepted both (the proxy added the operator token)
    assert listed.status_code == 200 and listed.json()["items"] == []
    assert created.status_code == 200, created.text
    assert server.ports.store.get_pool("console").name == "console"


def test_the_apis_refusals_come_back_as_they_are(local_proxy):
    with signed_in(local_proxy) as browser:
        missing = browser.get("/flow-runs/no-such-run")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/json"
    assert missing.json()["error"] == "not_found"


def test_a_browser_without_the_session_cookie_is_refused(local_proxy):
    with httpx.Client(base_url=local_proxy.url, cookies={COOKIE_NAME: "guessed"}) as stranger:
        answer = stranger.get("/flow-runs")
    assert answer.status_code == 401
    assert answer.json()["error"] == "unauthorized" and "sign-in link" in answer.json()["message"]


def test_an_old_sign_in_link_is_refused(local_proxy):
    with httpx.Client(base_url=local_proxy.url) as browser:
        answer = browser.get("/ui/", params={"session": "from-an-earlier-run"})
    assert answer.status_code == 403 and "set-cookie" not in answer.headers


def test_a_foreign_host_header_is_refused_even_with_the_cookie(local_proxy):
    # A DNS-rebinding page (evil.example resolving to 127.0.0.1) shares the cookie jar of
    # nothing, but even with the cookie its Host gives it away
    with signed_in(local_proxy) as browser:
        answer = browser.get("/flow-runs",
                             headers={"host": f"evil.example:{local_proxy.port}"})
    assert answer.status_code == 403 and answer.json()["error"] == "forbidden"


def test_localhost_is_accepted_as_the_host(local_proxy):
    with signed_in(local_proxy) as browser:
        answer = browser.get("/health", headers={"host": f"localhost:{local_proxy.port}"})
    assert answer.status_code == 200


def test_a_change_without_the_console_header_is_refused_and_not_forwarded(local_proxy, server):
    # A cross-site form can post with the cookie but cannot add a header
    with signed_in(local_proxy) as browser:
        answer = browser.post("/pools", json={"name": "forged"})
    assert answer.status_code == 403 and "x-sluice-console" in answer.json()["message"]
    assert [p.name for p in server.ports.store.list_pools()] == ["default"]


# ---- against a recording upstream: what is sent ------------------------------------------------

class _Recorder(BaseHTTPRequestHandler):
    seen: list[tuple[str, str, dict[str, str], bytes]]

    def _record(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        self.seen.append((self.command, self.path, {k.lower(): v for k, v in
                                                    self.headers.items()}, body))
        answer = json.dumps({"ok": True}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    do_GET = do_POST = _record  # noqa: N815

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def upstream() -> Iterator[tuple[str, list]]:
    seen: list = []
    handler = type("Recorder", (_Recorder,), {"seen": seen})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    httpd.shutdown()
    httpd.server_close()


def test_an_aws_profile_signs_each_forwarded_call_with_sigv4(upstream, monkeypatch):
    # Given AWS credentials in the environment and an AWS profile's connection
    url, seen = upstream
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDCONSOLETEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-for-tests")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    connection = Connection(url, None, kind="aws", region="eu-central-1")
    with ConsoleProxy(connection, port=0) as proxy, signed_in(proxy) as browser:
        # When the console reads stats and cancels a run, with a bearer header of its own
        browser.get("/stats/flow-runs?bucket_seconds=3600",
                    headers={"authorization": "Bearer from-the-page"})
        browser.post("/flow-runs/r1/cancel", json={"message": "stop"},
                     headers={"x-sluice-console": "1"})
    # Then each call reached the API signed for execute-api in the profile's region
    assert [(m, p) for m, p, _, _ in seen] == [
        ("GET", "/stats/flow-runs?bucket_seconds=3600"), ("POST", "/flow-runs/r1/cancel")]
    for _, _, headers, _ in seen:
        assert headers["authorization"].startswith(
            "AWS4-HMAC-SHA256 Credential=AKIDCONSOLETEST/")
        assert "/eu-central-1/execute-api/aws4_request" in headers["authorization"]
        assert "x-amz-date" in headers
        # And neither the browser's cookie nor its own credentials went along
        assert "cookie" not in headers and "from-the-page" not in headers["authorization"]
    assert json.loads(seen[1][3]) == {"message": "stop"}


def test_an_unreachable_control_plane_is_a_502_naming_it(monkeypatch):
    connection = Connection("http://127.0.0.1:9", OPERATOR, kind="local")
    with ConsoleProxy(connection, port=0, timeout=2) as proxy, signed_in(proxy) as browser:
        answer = browser.get("/flow-runs")
    assert answer.status_code == 502
    assert "http://127.0.0.1:9" in answer.json()["message"]


def test_sluice_ui_on_a_taken_port_names_the_fix(capsys, server):
    # Given the port taken by another process
    import socket

    from sluice.cli import main

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        # When `sluice ui` is started on it
        code = main(["ui", "--api-url", server.url, "--port", str(taken.getsockname()[1]),
                     "--no-open"])
    finally:
        taken.close()
    # Then it stops with a message naming the option to change
    shown = capsys.readouterr()
    message = " ".join((shown.err + shown.out).split())
    assert code != 0
    assert "already in use" in message and "pass --port" in message
