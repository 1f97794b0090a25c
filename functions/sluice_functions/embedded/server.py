"""The embedded control plane: one process serving the API (through the same handler Lambda
runs), an SQS-compatible endpoint for workers, and the scheduler/monitor timers."""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..ports import ControlPlanePorts
from .console_routes import console_answer
from .gateway import LambdaContext, from_response, to_event
from .network import (
    BoundedHttpServer,
    ConnectionLimits,
    HardenedRequestHandler,
    server_tls_context,
)
from .sqs_endpoint import SqsEndpoint

log = logging.getLogger("sluice.server")

DEFAULT_PORT = 4300
#: API Gateway HTTP APIs refuse request bodies over 10 MB
#: (https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-quotas.html).
MAX_REQUEST_BYTES = 10 * 1024 * 1024
#: SQS refuses messages over 256 KiB
#: (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/quotas-messages.html);
#: the run messages the endpoint carries are a few hundred bytes.
MAX_SQS_REQUEST_BYTES = 512 * 1024
SQS_PATH = "/sqs"
#: Where the embedded server takes and serves bundle bytes (what S3 presigned URLs do in AWS).
BUNDLE_DATA_PATH = "/bundle-data/"
#: How long `stop()` lets queued automations finish (a webhook times out after 5 s).
AUTOMATIONS_DRAIN_SECONDS = 10.0


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Handler(HardenedRequestHandler):
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

    def _reply(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for key, value in headers.items():
            if key.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(key, value)
        self.send_header("content-length", str(len(body)))
        if self.close_connection:  # tell a keep-alive client not to send another request
            self.send_header("connection", "close")
        try:
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            # The client gave up (a worker stopped mid long poll), or does not read what it
            # asked for: nothing left to tell it.
            self.close_connection = True

    def _error(self, status: int, error: str, message: str, *, close: bool = False) -> None:
        if close:
            self.close_connection = True
        body = json.dumps({"error": error, "message": message, "details": None}).encode()
        self._reply(status, {"content-type": "application/json"}, body)

    def _serve(self) -> None:
        plane = self.server.plane
        # Who may ask is decided from the request line and headers alone: a refused client
        # never gets a body byte read (nor held in memory), whatever it announced.
        target = self.headers.get("x-amz-target")
        if target:
            sqs_refusal = plane.sqs_head_refusal(dict(self.headers))
            if sqs_refusal is not None:
                self._refuse_sqs(*sqs_refusal)
                return
        else:
            console = console_answer(self.command, self.path)
            if console is not None:  # static files, no data: before (and without) auth
                if self.headers.get("content-length", "0") != "0" or self.headers.get(
                        "transfer-encoding"):
                    self.close_connection = True  # its body is never read
                self._reply(*console)
                return
            refusal = plane.api_request_refusal(self.command, self.path,
                                                self.headers.get("authorization"))
            if refusal is not None:
                self._error(*refusal, close=True)
                self.linger()
                return
        # An SQS request is checked in full only with its body (the signature covers it), so
        # its body is held before that check: it gets SQS's own bound, not the API's 10 MB.
        length = self.declared_length(MAX_SQS_REQUEST_BYTES if target else MAX_REQUEST_BYTES)
        if length is None:
            return
        self.continue_if_expected()
        body = self.read_body(length) if length else b""
        if body is None:
            return
        if target:
            if not plane.sqs_request_allowed(self.command, self.path, dict(self.headers), body):
                self._refuse_sqs("InvalidClientTokenId",
                                 "signature does not match the server's token")
                return
            self._reply(*plane.sqs.handle(target, body))
            return
        if not self.path.startswith("/"):
            self._error(400, "bad_request", f"the request target must be a path starting with "
                                            f"'/', got {self.path[:80]!r}")
            return
        if self.path.startswith(BUNDLE_DATA_PATH):
            self._reply(*plane.handle_bundle_data(self.command, self.path, body))
            return
        self._reply(*plane.handle_api(self.command, self.path, dict(self.headers), body,
                                      self.client_address[0]))

    def _refuse_sqs(self, code: str, message: str) -> None:
        self.close_connection = True
        self._reply(403, {"content-type": "application/x-amz-json-1.0"}, json.dumps(
            {"__type": f"com.amazonaws.sqs#{code}", "message": message}).encode())
        self.linger()


class _HttpServer(BoundedHttpServer):
    plane: EmbeddedServer


class EmbeddedServer:
    """The control plane in one process. `start()` binds and serves in background threads;
    `stop()` shuts down cleanly. Data lives in SQLite files under `data_dir`.

    `token` is the operator's token (`sluice.tokens`): every request must carry it or a token
    derived from it. `token=None` serves without authentication, on loopback only: for code that
    embeds the server in its own process (tests, benchmarks); `sluice server start`
    (`run_server`) always has a token."""

    def __init__(self, *, data_dir: Path, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                 token: str | None = None, tick_seconds: float = 5.0,
                 retention_days: int = 30,
                 ports_factory: Callable[[str], ControlPlanePorts] | None = None,
                 tls_cert: Path | str | None = None, tls_key: Path | str | None = None,
                 limits: ConnectionLimits | None = None) -> None:
        from sluice.exceptions import ConfigurationError

        if not is_loopback(host) and not token:
            raise ConfigurationError(
                f"refusing to bind {host}: beyond loopback every request must carry a token; "
                "pass --token-file (or set SLUICE_API_TOKEN)"
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
        self.limits = limits or ConnectionLimits()
        #: The certificate served over TLS (None: plain HTTP).
        self.tls_cert: Path | None = None
        self._tls_context: ssl.SSLContext | None = None
        if (tls_cert is None) != (tls_key is None):
            raise ConfigurationError("TLS needs both --tls-cert and --tls-key (the PEM "
                                     "certificate and its private key); pass both or neither")
        if tls_cert is not None and tls_key is not None:
            self.tls_cert = Path(tls_cert).expanduser().resolve()
            self._tls_context = server_tls_context(self.tls_cert,
                                                   Path(tls_key).expanduser().resolve())
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
        if ":" in shown:  # an IPv6 literal
            shown = f"[{shown}]"
        scheme = "https" if self._tls_context is not None else "http"
        return f"{scheme}://{shown}:{self.port}"

    @property
    def sqs_endpoint(self) -> str:
        return f"{self.url}{SQS_PATH}"

    def _sqlite_ports(self, queue_url_base: str) -> ControlPlanePorts:
        from ..adapters.local import LocalBundleStore
        from ..adapters.memory_metrics import InMemoryMetrics
        from ..adapters.sqlite import (
            SqliteEventStore,
            SqliteLogSink,
            SqliteRunQueue,
            SqliteRunStore,
        )
        from ..adapters.sqlite.automation_store import SqliteAutomationStore
        from ..migrations.guard import SchemaGuard
        from ..migrations.sqlite import SqliteMigrationBackend

        self.data_dir.mkdir(parents=True, exist_ok=True)
        return ControlPlanePorts(
            store=SqliteRunStore(self.data_dir / "store.db"),
            queue=SqliteRunQueue(self.data_dir / "queue.db", url_base=queue_url_base),
            logs=SqliteLogSink(self.data_dir / "logs.db"),
            metrics=InMemoryMetrics(),
            bundles=LocalBundleStore(self.data_dir / "bundles", self.url),
            # Embedded events are stored only (no EventBridge): the default publisher discards.
            events=SqliteEventStore(self.data_dir / "events.db"),
            automations=SqliteAutomationStore(self.data_dir / "store.db"),
            # After the run store (keyword arguments run in order): it stamps a new file.
            schema=SchemaGuard(SqliteMigrationBackend(self.data_dir / "store.db").read_status),
        )

    def start(self) -> EmbeddedServer:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        _HttpServer.address_family = family
        self._http = _HttpServer((self.host, self._requested_port), _Handler,
                                 limits=self.limits, ssl_context=self._tls_context)
        self._http.plane = self
        self.ports = self._ports_factory(f"{self.sqs_endpoint}/")
        from ..api import build_app
        from ..automations.dispatch import ThreadDispatcher
        from ..service import ensure_pool
        from ..service.event_log import attach_recorder

        # Automations act on a background thread, never in the request or claim that recorded
        # the event (a webhook may take seconds); `stop()` drains it.
        self.automation_dispatcher = ThreadDispatcher(self.ports)
        attach_recorder(self.ports, self.automation_dispatcher)

        self.app = build_app(self.ports)
        if self.token:
            from .auth import TokenAuthorizer

            self.authorizer = TokenAuthorizer(self.token, self.ports.store)
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
        dispatcher = getattr(self, "automation_dispatcher", None)
        if dispatcher is not None:  # started: act on what was recorded before closing stores
            dispatcher.close(timeout=AUTOMATIONS_DRAIN_SECONDS)
        for adapter in (self.ports.store, self.ports.queue, self.ports.logs, self.ports.events,
                        self.ports.automations):
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
        from ..config import ControlPlaneSettings

        last = [0.0]

        def run() -> int:
            if time.monotonic() - last[0] < 600:
                return 0
            last[0] = time.monotonic()
            cutoff = utcnow() - timedelta(days=self.retention_days)
            purged = purge_finished_runs(self.ports.store, self.ports.logs, cutoff)  # type: ignore[arg-type]
            # Events have their own, shorter retention (SLUICE_EVENT_RETENTION_DAYS).
            event_days = ControlPlaneSettings().event_retention_days
            self.ports.events.purge_before(utcnow() - timedelta(days=event_days))
            return purged

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
    def api_request_refusal(self, method: str, path: str, authorization: str | None
                            ) -> tuple[int, str, str] | None:
        """None when the request may go on; else (status, error code, message) to answer.
        Decided from the request line and the Authorization header alone, before any body
        byte is read: the token's principal (operator, a pool's workers, a run's flow process;
        see `auth.TokenAuthorizer`) against the routes it may call."""
        if not self.token:
            return None
        return self.authorizer.refusal(method, path, authorization)

    def sqs_head_refusal(self, headers: dict[str, str]) -> tuple[str, str] | None:
        """None when an SQS request may send its body; else (SQS error code, message). Checks
        what the headers alone tell (SigV4 shape and date); the signature needs the body."""
        if not self.token:
            return None
        from .sigv4 import head_refusal

        return head_refusal(headers)

    def sqs_request_allowed(self, method: str, path: str, headers: dict[str, str],
                            body: bytes) -> bool:
        """With a token, SQS requests must be SigV4-signed with a token as the secret key: the
        operator's, or a pool's (access key `sluice.tokens.sqs_credentials`), which reaches only
        that pool's queue. The signature is recomputed with botocore."""
        if not self.token:
            return True
        from .sigv4 import access_key_of, signature_matches
        from .sqs_endpoint import queue_of

        secret, pool = self.authorizer.sqs_secret(access_key_of(headers) or "")
        return (signature_matches(method, f"{self.url}{path}", headers, body, secret=secret)
                and self.authorizer.sqs_queue_allowed(
                    pool, headers.get("x-amz-target") or headers.get("X-Amz-Target") or "",
                    body, queue_of))

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
