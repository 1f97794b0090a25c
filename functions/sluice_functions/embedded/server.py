"""The embedded control plane: one process serving the API (through the same handler Lambda
runs), an SQS-compatible endpoint for workers, and the scheduler/monitor timers."""

from __future__ import annotations

import ipaddress
import json
import logging
import secrets
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ..ports import ControlPlanePorts
from .gateway import LambdaContext, from_response, to_event
from .sqs_endpoint import SqsEndpoint

log = logging.getLogger("sluice.server")

DEFAULT_PORT = 4300
#: API Gateway HTTP APIs refuse request bodies over 10 MB
#: (https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-quotas.html).
MAX_REQUEST_BYTES = 10 * 1024 * 1024
SQS_PATH = "/sqs"
#: Where the embedded server takes and serves bundle bytes (what S3 presigned URLs do in AWS).
BUNDLE_DATA_PATH = "/bundle-data/"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out as separate writes; with Nagle's algorithm and delayed ACKs
    # that costs ~40 ms per response on a kept-alive connection.
    disable_nagle_algorithm = True
    server: _HttpServer

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_GET  # noqa: N815

    def __getattr__(self, name: str) -> Any:
        # Any other method (OPTIONS, TRACE, made-up ones) goes to the handler too, as API
        # Gateway's $default route does, and gets its JSON 4xx instead of http.server's 501.
        if name.startswith("do_"):
            return self._serve
        raise AttributeError(name)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        log.debug("%s - %s", self.address_string(), format % args)

    def _reply(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for key, value in headers.items():
            if key.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(key, value)
        self.send_header("content-length", str(len(body)))
        try:
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (a worker stopped mid long poll): nothing left to tell it.
            self.close_connection = True

    def _error(self, status: int, error: str, message: str) -> None:
        body = json.dumps({"error": error, "message": message, "details": None}).encode()
        self._reply(status, {"content-type": "application/json"}, body)

    def _serve(self) -> None:
        plane = self.server.plane
        declared = (self.headers.get("content-length") or "0").strip()
        # A length that is not a plain count would raise here (no answer at all) or, negative,
        # make the read below wait for the client to close the connection: refuse it.
        if not declared.isascii() or not declared.isdigit():
            self.close_connection = True  # where the body ends is unknown
            self._error(400, "bad_request",
                        f"Content-Length must be a number of bytes, got {declared[:40]!r}")
            return
        length = int(declared)
        if length > MAX_REQUEST_BYTES:
            self.close_connection = True  # the unread body makes the connection unusable
            self._error(413, "payload_too_large",
                        f"request body of {length} bytes is over the {MAX_REQUEST_BYTES}-byte "
                        "limit")
            return
        body = self.rfile.read(length) if length else b""
        target = self.headers.get("x-amz-target")
        if target:
            if not plane.sqs_request_allowed(self.command, self.path, dict(self.headers), body):
                self._reply(403, {"content-type": "application/x-amz-json-1.0"}, json.dumps(
                    {"__type": "com.amazonaws.sqs#InvalidClientTokenId",
                     "message": "signature does not match the server's token"}).encode())
                return
            self._reply(*plane.sqs.handle(target, body))
            return
        if not plane.api_request_allowed(self.headers.get("authorization")):
            self._error(401, "unauthorized",
                        "this server needs a token: send `Authorization: Bearer <token>` "
                        "(set SLUICE_API_TOKEN or the profile's api_token)")
            return
        if self.path.startswith(BUNDLE_DATA_PATH):
            self._reply(*plane.handle_bundle_data(self.command, self.path, body))
            return
        self._reply(*plane.handle_api(self.command, self.path, dict(self.headers), body,
                                      self.client_address[0]))


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    plane: EmbeddedServer


class EmbeddedServer:
    """The control plane in one process. `start()` binds and serves in background threads;
    `stop()` shuts down cleanly. Data lives in SQLite files under `data_dir`."""

    def __init__(self, *, data_dir: Path, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                 token: str | None = None, tick_seconds: float = 5.0,
                 retention_days: int = 30,
                 ports_factory: Callable[[str], ControlPlanePorts] | None = None) -> None:
        from sluice.exceptions import ConfigurationError

        if not is_loopback(host) and not token:
            raise ConfigurationError(
                f"refusing to bind {host}: beyond loopback every request must carry a token; "
                "pass --token (or set SLUICE_API_TOKEN)"
            )
        self.data_dir = Path(data_dir).expanduser()
        self.host, self.token, self.tick_seconds = host, token, tick_seconds
        self.retention_days = retention_days
        self._requested_port = port
        self._ports_factory = ports_factory or self._sqlite_ports
        self._owns_ports = ports_factory is None
        self._http: _HttpServer | None = None
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        #: Periodic jobs (scheduler, monitor, enqueue of due runs), each called every tick.
        self.jobs: list[tuple[str, Callable[[], Any]]] = []

    # -- lifecycle -------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        assert self._http is not None, "start() first"
        return self._http.server_address[1]

    @property
    def url(self) -> str:
        shown = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{shown}:{self.port}"

    @property
    def sqs_endpoint(self) -> str:
        return f"{self.url}{SQS_PATH}"

    def _sqlite_ports(self, queue_url_base: str) -> ControlPlanePorts:
        from ..adapters.local import LocalBundleStore
        from ..adapters.memory_metrics import InMemoryMetrics
        from ..adapters.sqlite import SqliteLogSink, SqliteRunQueue, SqliteRunStore

        self.data_dir.mkdir(parents=True, exist_ok=True)
        return ControlPlanePorts(
            store=SqliteRunStore(self.data_dir / "store.db"),
            queue=SqliteRunQueue(self.data_dir / "queue.db", url_base=queue_url_base),
            logs=SqliteLogSink(self.data_dir / "logs.db"),
            metrics=InMemoryMetrics(),
            bundles=LocalBundleStore(self.data_dir / "bundles", self.url),
        )

    def start(self) -> EmbeddedServer:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        _HttpServer.address_family = family
        self._http = _HttpServer((self.host, self._requested_port), _Handler)
        self._http.plane = self
        self.ports = self._ports_factory(f"{self.sqs_endpoint}/")
        from ..api import build_app
        from ..service import ensure_pool

        self.app = build_app(self.ports)
        # Powertools keeps the current event on the resolver class, shared between threads:
        # requests through one app must not overlap (each takes about a millisecond).
        self._resolve_lock = threading.Lock()
        self.sqs = SqsEndpoint(self.ports.queue)
        if self._owns_ports:  # injected ports (AWS in tests) are provisioned by their owner
            ensure_pool("default", store=self.ports.store, queue=self.ports.queue)
        self._add_default_jobs()
        self._spawn("sluice-http", self._http.serve_forever)
        self._spawn("sluice-ticks", self._tick_loop)
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        for adapter in (self.ports.store, self.ports.queue, self.ports.logs):
            close = getattr(adapter, "close", None)
            if close is not None:
                close()

    def _spawn(self, name: str, target: Callable[[], Any]) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _add_default_jobs(self) -> None:
        from datetime import timedelta

        from ..handlers.ticks import embedded_jobs

        self.jobs.extend(embedded_jobs(self.ports,
                                       tick_interval=timedelta(seconds=self.tick_seconds)))
        if self._ports_factory == self._sqlite_ports:
            self.jobs.append(("retention", self._retention_job()))

    def _retention_job(self) -> Callable[[], Any]:
        """Purge finished runs past the retention period, at most every 10 minutes."""
        from datetime import timedelta

        from sluice.models import utcnow

        from ..adapters.sqlite.retention import purge_finished_runs

        last = [0.0]

        def run() -> int:
            if time.monotonic() - last[0] < 600:
                return 0
            last[0] = time.monotonic()
            cutoff = utcnow() - timedelta(days=self.retention_days)
            return purge_finished_runs(self.ports.store, self.ports.logs, cutoff)  # type: ignore[arg-type]

        return run

    def _tick_loop(self) -> None:
        while not self._stopping.wait(self.tick_seconds):
            self.tick()

    def tick(self) -> None:
        """Run every periodic job once (tests call this to avoid waiting for the timer)."""
        for name, job in self.jobs:
            try:
                job()
            except Exception:
                log.exception("periodic job %s failed", name)

    # -- requests --------------------------------------------------------------------------------
    def api_request_allowed(self, authorization: str | None) -> bool:
        if not self.token:
            return True
        expected = f"Bearer {self.token}"
        return authorization is not None and secrets.compare_digest(authorization, expected)

    def sqs_request_allowed(self, method: str, path: str, headers: dict[str, str],
                            body: bytes) -> bool:
        """With a token, SQS requests must be SigV4-signed with the token as the secret key
        (workers do that; see `sluice_worker`). The signature is recomputed with botocore."""
        if not self.token:
            return True
        from .sigv4 import signature_matches

        return signature_matches(method, f"{self.url}{path}", headers, body, secret=self.token)

    def handle_bundle_data(self, method: str, path: str, body: bytes
                           ) -> tuple[int, dict[str, str], bytes]:
        store = self.ports.bundles
        digest = path[len(BUNDLE_DATA_PATH):].split("?", 1)[0]
        try:
            if method == "PUT":
                store.write(digest, body)  # type: ignore[union-attr]
                return 200, {"content-type": "application/json"}, b"{}"
            if method == "GET":
                data = store.read(digest)  # type: ignore[union-attr]
                if data is not None:
                    return 200, {"content-type": "application/zip"}, data
                return 404, {"content-type": "application/json"}, json.dumps(
                    {"error": "not_found", "message": f"no bundle {digest}",
                     "details": None}).encode()
        except ValueError as exc:
            return 400, {"content-type": "application/json"}, json.dumps(
                {"error": "bad_request", "message": str(exc), "details": None}).encode()
        return 405, {"content-type": "application/json"}, json.dumps(
            {"error": "method_not_allowed", "message": "use PUT or GET", "details": None}
        ).encode()

    def handle_api(self, method: str, path: str, headers: dict[str, str], body: bytes,
                   source_ip: str) -> tuple[int, dict[str, str], bytes]:
        event = to_event(method, path, headers, body, source_ip)
        try:
            with self._resolve_lock:
                response = self.app.resolve(event,
                                            LambdaContext(aws_request_id=uuid.uuid4().hex))
        except Exception:  # the handler maps errors itself; this is a bug, said as JSON
            log.exception("unhandled error in the api handler")
            return 500, {"content-type": "application/json"}, json.dumps(
                {"error": "internal_error", "message": "internal error", "details": None}
            ).encode()
        return from_response(response)


def run_server(*, host: str = "127.0.0.1", port: int = DEFAULT_PORT, data_dir: Path | None = None,
               token: str | None = None, tick_seconds: float = 5.0,
               retention_days: int = 30) -> None:
    """`sluice server start`: serve until Ctrl-C or SIGTERM; write the `local` profile."""
    from sluice.profiles import LOCAL_PROFILE, Profile, load_profiles, upsert_profile
    from sluice.settings import get_settings

    settings = get_settings()
    server = EmbeddedServer(data_dir=data_dir or settings.home / "server", host=host, port=port,
                            token=token, tick_seconds=tick_seconds,
                            retention_days=retention_days).start()
    activate = load_profiles().active in (None, LOCAL_PROFILE)
    path = upsert_profile(LOCAL_PROFILE, Profile(kind="local", api_url=server.url,
                                                 api_token=token,
                                                 sqs_endpoint=server.sqs_endpoint),
                          activate=activate)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print(f"Sluice server listening on {server.url}", flush=True)
    print(f"  API           {server.url}  (OpenAPI: {server.url}/openapi.json)", flush=True)
    print(f"  SQS endpoint  {server.sqs_endpoint}", flush=True)
    print(f"  data          {server.data_dir}", flush=True)
    print(f"  profile       '{LOCAL_PROFILE}' in {path}"
          + ("" if activate else " (not made active: another profile is)"), flush=True)
    print("Press Ctrl-C to stop.", flush=True)
    while not stop.wait(0.5):
        pass
    print("Stopping…", flush=True)
    started = time.monotonic()
    server.stop()
    print(f"Stopped in {time.monotonic() - started:.2f} s.", flush=True)
