"""`sluice ui`: the console on localhost for any control plane, signed in with the operator's own
credentials.

A small HTTP server on 127.0.0.1 serves the console's files under `/ui/` and forwards every
other request to the profile's control plane through the SDK's HTTP client, which signs it
(SigV4 with the operator's AWS credentials for an AWS profile, the bearer token for a local
one). The browser never holds a credential: it gets a random session cookie in exchange for the
one-time link the command prints, and the proxy refuses what a hostile web page could send it:

* no session cookie (`sluice_console`, HttpOnly, SameSite=Strict): 401;
* a Host header other than 127.0.0.1:PORT or localhost:PORT (DNS rebinding: a site whose name
  resolves to 127.0.0.1 would otherwise be same-origin with the proxy): 403;
* a request that changes something (not GET/HEAD) without `x-sluice-console: 1` (a cross-site
  form cannot set a header): 403.

The browser's Cookie and Authorization headers are never forwarded.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import threading
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import httpx

from .console_files import SECURITY_HEADERS, UI_PREFIX, console_response, is_console_path
from .profiles import Connection

log = logging.getLogger("sluice.ui")

DEFAULT_PORT = 4310
HOST = "127.0.0.1"
COOKIE_NAME = "sluice_console"
CSRF_HEADER = "x-sluice-console"
#: The API's own request bound (API Gateway HTTP APIs: 10 MB).
MAX_REQUEST_BYTES = 10 * 1024 * 1024
#: Request headers passed on to the control plane; everything else (Cookie, Authorization,
#: Origin, the browser's Host) stays here. The client adds its own signature or token.
FORWARDED_REQUEST_HEADERS = ("content-type", "accept")
#: Response headers passed back to the browser beside the body.
FORWARDED_RESPONSE_HEADERS = ("content-type", "retry-after")
#: Seconds an API call may take (log pages, stats of a month).
DEFAULT_TIMEOUT = 60.0


class ConsoleProxy:
    """The proxy of one `sluice ui`: `start()` serves in a background thread, `stop()` ends it.

    `http` is the client requests are forwarded with; by default the SDK's client for
    `connection` (`build_http_client`), which signs each request as `SluiceClient` does."""

    def __init__(self, connection: Connection, *, port: int = DEFAULT_PORT,
                 http: httpx.Client | None = None, timeout: float = DEFAULT_TIMEOUT) -> None:
        from .client.transport import build_http_client

        self.connection = connection
        self.http = http or build_http_client(connection, timeout)
        #: The session secret: in the sign-in link once, then in the browser's cookie.
        self.session = secrets.token_urlsafe(32)
        self._requested_port = port
        self._server: _ProxyServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._server is not None, "start() first"
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def sign_in_url(self) -> str:
        """The link that signs a browser in (once per browser; then the cookie does)."""
        return f"{self.url}{UI_PREFIX}?session={self.session}"

    def allowed_hosts(self) -> frozenset[str]:
        return frozenset({f"{HOST}:{self.port}", f"localhost:{self.port}"})

    def start(self) -> ConsoleProxy:
        """Bind 127.0.0.1:PORT (0: any free port) and serve in a daemon thread. Raises
        `OSError` (EADDRINUSE) when the port is taken."""
        self._server = _ProxyServer((HOST, self._requested_port), _ProxyHandler)
        self._server.proxy = self
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="sluice-ui", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.http.close()

    def __enter__(self) -> ConsoleProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- decisions (pure: the handler only does I/O) --------------------------------------------
    def refusal(self, method: str, path: str, headers: dict[str, str]
                ) -> tuple[int, str, str] | None:
        """(status, error code, message) when a request must not be answered, else None."""
        if headers.get("host", "").lower() not in self.allowed_hosts():
            return (403, "forbidden", f"this console answers only to http://{HOST}:{self.port} "
                                      f"or http://localhost:{self.port}: open the address "
                                      "`sluice ui` printed")
        if is_console_path(path) or path == "/":
            return None  # files without data, and the sign-in link
        if not self.signed_in(headers.get("cookie")):
            return (401, "unauthorized", "this browser is not signed in to `sluice ui`: open the "
                                         "sign-in link it printed (…/ui/?session=…), or run "
                                         "`sluice ui` again for a new one")
        if method not in ("GET", "HEAD") and headers.get(CSRF_HEADER) != "1":
            return (403, "forbidden", f"a request that changes something needs the header "
                                      f"'{CSRF_HEADER}: 1' (the console sends it; a form on "
                                      "another site cannot)")
        return None

    def signed_in(self, cookie_header: str | None) -> bool:
        if not cookie_header:
            return False
        try:
            cookies = SimpleCookie(cookie_header)
        except CookieError:
            return False
        morsel = cookies.get(COOKIE_NAME)
        return morsel is not None and hmac.compare_digest(morsel.value, self.session)

    def session_of(self, query: str) -> str | None:
        values = parse_qs(query).get("session")
        return values[0] if values else None

    def session_cookie(self) -> str:
        return f"{COOKIE_NAME}={self.session}; HttpOnly; SameSite=Strict; Path=/"

    def forward(self, method: str, target: str, headers: dict[str, str], body: bytes
                ) -> tuple[int, dict[str, str], bytes]:
        """Send the request to the control plane (signed by the client) and return its answer:
        status, content type and body; 502 JSON when it cannot be reached."""
        kept = {name: headers[name] for name in FORWARDED_REQUEST_HEADERS if name in headers}
        try:
            response = self.http.request(method, target, headers=kept, content=body or None)
        except httpx.HTTPError as exc:
            log.warning("forwarding %s %s failed: %s", method, target, exc)
            return _json(502, "bad_gateway", f"the control plane at {self.connection.api_url} "
                                              f"did not answer ({exc}); check it is up and the "
                                              "profile's api_url")
        answer = {name: response.headers[name] for name in FORWARDED_RESPONSE_HEADERS
                  if name in response.headers}
        answer["cache-control"] = "no-store"  # API answers hold data: never cached on disk
        return response.status_code, answer, response.content


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    proxy: ConsoleProxy


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _ProxyServer

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET  # noqa: N815

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        log.debug("%s " + format, self.client_address[0], *args)

    def _serve(self) -> None:
        proxy = self.server.proxy
        headers = {key.lower(): value for key, value in self.headers.items()}
        parts = urlsplit(self.path)
        path = parts.path or "/"
        refusal = proxy.refusal(self.command, path, headers)
        if refusal is not None:
            self.close_connection = True
            self._reply(*_json(*refusal))
            return
        if path == "/" or is_console_path(path):
            self._console(proxy, path, parts.query)
            return
        body = self._body()
        if body is None:
            return
        target = path + (f"?{parts.query}" if parts.query else "")
        self._reply(*proxy.forward(self.command, target, headers, body))

    def _console(self, proxy: ConsoleProxy, path: str, query: str) -> None:
        session = proxy.session_of(query)
        if session is not None and self.command in ("GET", "HEAD"):
            if not hmac.compare_digest(session, proxy.session):
                self._reply(*_json(403, "forbidden", "this sign-in link is not this `sluice "
                                                     "ui`'s (an older one?): open the link it "
                                                     "printed last"))
                return
            self._reply(302, {"location": UI_PREFIX, "set-cookie": proxy.session_cookie(),
                              "cache-control": "no-store", **SECURITY_HEADERS}, b"")
            return
        if path == "/":
            self._reply(302, {"location": UI_PREFIX}, b"")
            return
        self._reply(*console_response(self.command, path))

    def _body(self) -> bytes | None:
        if self.headers.get("transfer-encoding"):
            self.close_connection = True
            self._reply(*_json(411, "length_required", "send the body with a content-length"))
            return None
        try:
            length = int(self.headers.get("content-length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_REQUEST_BYTES:
            self.close_connection = True
            self._reply(*_json(413, "payload_too_large", f"request bodies are at most "
                                                         f"{MAX_REQUEST_BYTES} bytes"))
            return None
        return self.rfile.read(length) if length else b""

    def _reply(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("content-length", str(len(body)))
        if self.close_connection:
            self.send_header("connection", "close")
        try:
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


def _json(status: int, error: str, message: str) -> tuple[int, dict[str, str], bytes]:
    body = json.dumps({"error": error, "message": message, "details": None}).encode()
    return status, {"content-type": "application/json", "cache-control": "no-store"}, body
