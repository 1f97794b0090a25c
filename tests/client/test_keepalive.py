"""The reporter's events batches over keep-alive connections (`client.keepalive`, issue 20):
one connection per sending thread, a connection the server dropped while idle replaced
without losing the batch, httpx's errors for the transport's failures (so retries and error
mapping stay `transport.send`'s), and httpx again wherever a proxy applies."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from sluice import exceptions as errors
from sluice.client import SluiceClient
from sluice.client.keepalive import KeepAlivePoster
from sluice.client.transport import SigV4Auth, Unreachable
from sluice.profiles import Connection


class Recorder(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.requests: list[dict[str, Any]] = []
        #: Client ports of the connections that ended.
        self.closed: list[int] = []
        #: What the next answers do: "ok", "drop" (close silently after answering, as an
        #: expired keep-alive), "close" (say Connection: close), "slow", or a status code.
        self.behaviour: list[Any] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Recorder

    def log_message(self, *args: Any) -> None:
        pass

    def finish(self) -> None:
        super().finish()
        self.server.closed.append(self.client_address[1])

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["content-length"]))
        self.server.requests.append({"path": self.path, "body": body,
                                     "headers": dict(self.headers.items()),
                                     "connection": self.client_address[1]})
        behaviour = self.server.behaviour.pop(0) if self.server.behaviour else "ok"
        if behaviour == "slow":
            time.sleep(1.0)
        status = behaviour if isinstance(behaviour, int) else 200
        answer = (json.dumps({"task_runs": 1, "logs": 0}) if status == 200 else
                  json.dumps({"error": "stale_lease", "message": "lease lost"})).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(answer)))
        if behaviour == "close":
            self.send_header("connection", "close")
        self.end_headers()
        self.wfile.write(answer)
        if behaviour in ("drop", "close"):
            self.close_connection = True


@pytest.fixture
def server() -> Iterator[Recorder]:
    recorder = Recorder()
    thread = threading.Thread(target=recorder.serve_forever, daemon=True)
    thread.start()
    yield recorder
    recorder.shutdown()
    recorder.server_close()


def poster(url: str, headers: dict[str, str] | None = None, **options: Any) -> KeepAlivePoster:
    options.setdefault("timeout", httpx.Timeout(5.0))
    return KeepAlivePoster(url, headers={"user-agent": "sluice-client", **(headers or {})},
                           **options)


def test_batches_from_one_thread_share_one_connection(server):
    # Given a poster, When a thread posts three batches
    sender = poster(server.url + "/prod")
    answers = [sender.post("/flow-runs/r1/events", b'{"task_runs":[]}') for _ in range(3)]

    # Then they went over one connection, under the API's path, as JSON, with its headers
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert answers[0].json() == {"task_runs": 1, "logs": 0}
    assert len({r["connection"] for r in server.requests}) == 1
    first = server.requests[0]
    assert first["path"] == "/prod/flow-runs/r1/events" and first["body"] == b'{"task_runs":[]}'
    assert first["headers"]["content-type"] == "application/json"
    assert first["headers"]["user-agent"] == "sluice-client"
    sender.close()


def test_each_thread_sends_over_a_connection_of_its_own(server):
    sender = poster(server.url)
    threads = [threading.Thread(target=sender.post, args=("/e", b"{}")) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({r["connection"] for r in server.requests}) == 3
    sender.close()


@pytest.mark.parametrize("how", ["drop", "close"])
def test_a_connection_the_server_closed_is_replaced_and_the_batch_delivered(server, how):
    # Given a connection the server closes after its first answer (silently, as an expired
    # keep-alive, or saying so)
    sender = poster(server.url)
    server.behaviour = [how]
    assert sender.post("/e", b'{"n":1}').status_code == 200
    time.sleep(0.05)

    # When the next batch goes, Then it arrives once, over a new connection
    assert sender.post("/e", b'{"n":2}').status_code == 200
    assert [r["body"] for r in server.requests] == [b'{"n":1}', b'{"n":2}']
    assert server.requests[0]["connection"] != server.requests[1]["connection"]
    sender.close()


def test_failures_are_httpx_transport_errors(server):
    # A server that does not answer in time: a read timeout
    slow = poster(server.url, timeout=httpx.Timeout(0.2))
    server.behaviour = ["slow"]
    with pytest.raises(httpx.ReadTimeout):
        slow.post("/e", b"{}")
    slow.close()

    # Nothing listening: a connect error
    port = server.server_address[1]
    server.shutdown()
    server.server_close()
    with pytest.raises(httpx.ConnectError):
        poster(f"http://127.0.0.1:{port}").post("/e", b"{}")


def test_a_closed_poster_refuses_to_send(server):
    sender = poster(server.url)
    sender.post("/e", b"{}")
    sender.close()
    with pytest.raises(RuntimeError, match="closed"):
        sender.post("/e", b"{}")


def test_the_client_sends_batches_through_it_with_its_retries_and_errors(server, monkeypatch):
    # Given the SDK's client of a control plane (bearer token)
    monkeypatch.setattr("sluice.client.transport.time.sleep", lambda s: None)
    client = SluiceClient(Connection(api_url=server.url, api_token="secret"), attempts=3)
    assert client.poster is not None

    # When a batch is answered 503 then 200, Then it was retried over the poster
    server.behaviour = [503]
    assert client.send_events("r1", b'{"task_runs":[]}').task_runs == 1
    assert len(server.requests) == 2
    assert server.requests[0]["headers"]["authorization"] == "Bearer secret"

    # And a refusal is the SDK's error, not retried
    server.behaviour = [409]
    with pytest.raises(errors.StaleLease):
        client.send_events("r1", b'{"task_runs":[]}')
    assert len(server.requests) == 3

    # And an unreachable control plane ends in Unreachable after the client's attempts
    client.close()
    port = server.server_address[1]
    server.shutdown()
    server.server_close()
    gone = SluiceClient(Connection(api_url=f"http://127.0.0.1:{port}"), attempts=2)
    with pytest.raises(Unreachable):
        gone.send_events("r1", b"{}")
    gone.close()


@pytest.mark.parametrize("variable, url", [
    ("HTTP_PROXY", "http://control-plane.internal:4200"),
    ("http_proxy", "http://control-plane.internal:4200"),
    ("ALL_PROXY", "http://control-plane.internal:4200"),
    ("HTTPS_PROXY", "https://control-plane.internal"),
])
def test_with_a_proxy_for_the_control_planes_scheme_batches_take_httpx(monkeypatch, variable,
                                                                        url):
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY",
                 "all_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(variable, "http://proxy.internal:3128")
    client = SluiceClient(Connection(api_url=url))
    assert client.poster is None  # httpx speaks to the proxy
    client.close()

    # Whatever NO_PROXY says (httpx's reading of it decides whether the proxy is used)
    monkeypatch.setenv("NO_PROXY", ".internal")
    bypassed = SluiceClient(Connection(api_url=url))
    assert bypassed.poster is None
    bypassed.close()

    # A proxy for the other scheme only leaves the poster in place
    monkeypatch.delenv(variable)
    monkeypatch.setenv("HTTPS_PROXY" if url.startswith("http:") else "HTTP_PROXY",
                       "http://proxy.internal:3128")
    other = SluiceClient(Connection(api_url=url))
    assert other.poster is not None
    other.close()


def test_a_client_given_its_own_http_client_sends_everything_through_it():
    # Tests' fakes (httpx.MockTransport) see every request, batches included
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(200, json={"task_runs": 0, "logs": 0})

    http = httpx.Client(base_url="http://cp", transport=httpx.MockTransport(handler))
    client = SluiceClient(Connection(api_url="http://cp"), http=http)
    assert client.poster is None
    client.send_events("r1", b"{}")
    assert seen == ["/flow-runs/r1/events"]


def test_aws_batches_are_signed_as_httpx_requests_are(server, monkeypatch):
    # Given AWS credentials, a fixed clock, and a signing poster of an API with a stage
    import datetime as dt

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setattr("botocore.auth.get_current_datetime",
                        lambda: dt.datetime(2026, 12, 5, 12, 0, 0))
    auth = SigV4Auth("eu-west-1")
    sender = poster(server.url + "/prod", sign=auth.headers_for,
                    headers={"authorization": "Bearer also-set"})

    # When a batch is posted
    sender.post("/flow-runs/r1/events", b'{"task_runs":[]}')

    # Then it carries exactly httpx's signature of the same request, and no bearer token
    sent = {k.lower(): v for k, v in server.requests[0]["headers"].items()}
    request = httpx.Request("POST", server.url + "/prod/flow-runs/r1/events",
                            content=b'{"task_runs":[]}',
                            headers={"content-type": "application/json"})
    signed = next(auth.auth_flow(request))
    assert sent["authorization"] == signed.headers["authorization"]
    assert sent["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261205/")
    assert sent["x-amz-date"] == signed.headers["x-amz-date"] == "20261205T120000Z"
    sender.close()


def test_an_aws_connection_gets_a_signing_poster(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    client = SluiceClient(Connection(kind="aws", region="eu-west-1",
                                     api_url="https://abc.execute-api.eu-west-1.amazonaws.com/prod"))
    assert client.poster is not None and client.poster._sign is not None
    assert client.poster._prefix == "/prod" and client.poster._https
    client.close()


def test_a_thread_that_ends_takes_its_connection_along(server):
    # Given a batch posted from a thread that then ends
    sender = poster(server.url)
    thread = threading.Thread(target=sender.post, args=("/e", b"{}"))
    thread.start()
    thread.join()
    import gc

    gc.collect()
    # Then its connection was closed (the server saw it end), not left open until close()
    port = server.requests[0]["connection"]
    deadline = time.monotonic() + 5
    while port not in server.closed and time.monotonic() < deadline:
        time.sleep(0.01)
    assert port in server.closed
    sender.close()


def test_a_connection_idle_past_its_expiry_is_replaced_before_use(server, monkeypatch):
    monkeypatch.setattr("sluice.client.keepalive.KEEPALIVE_EXPIRY_SECONDS", 0.05)
    sender = poster(server.url)
    sender.post("/e", b"{}")
    time.sleep(0.1)
    sender.post("/e", b"{}")
    first, second = (r["connection"] for r in server.requests)
    assert first != second and len(server.requests) == 2  # nothing sent twice
    sender.close()


def test_an_ipv6_address_without_a_port_gets_the_schemes_port():
    assert (KeepAlivePoster("http://[::1]/api", headers={}, timeout=httpx.Timeout(1))._port,
            KeepAlivePoster("https://[::1]", headers={}, timeout=httpx.Timeout(1))._port) == \
        (80, 443)
