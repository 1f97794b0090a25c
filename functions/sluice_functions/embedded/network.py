"""The embedded server's connection handling, hardened for a network that is not loopback.

* every connection has deadlines: the idle wait for a request, the whole request head (line and
  headers) once its first byte came, each read of the body, each write of the answer; a client
  that is slow to *send* is dropped, while a request that waits on the server (an SQS long poll)
  is never cut, because no socket read happens while the server works;
* a bound on concurrent connections: past it a connection gets a canned 503 (or, under TLS, is
  closed) in the accept loop, instead of a thread of its own;
* any malformed request line or header gets a JSON 4xx, never a dropped connection or HTML;
* optional TLS (1.2 or later), the handshake done in the connection's thread under its deadline.
"""

from __future__ import annotations

import io
import json
import logging
import socket
import ssl
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

log = logging.getLogger("sluice.server")

#: Connections served at once; more get a 503 without a thread (each one holds a thread).
MAX_CONNECTIONS = 256
#: Seconds a client has to send a whole request line and its headers, from their first byte.
HEAD_TIMEOUT_SECONDS = 30.0
#: Seconds a client may leave between two pieces of a request body.
BODY_READ_TIMEOUT_SECONDS = 30.0
#: Seconds a connection may wait for its (next) request. Longer than the keep-alive expiry of
#: httpx's pool (5 s), so clients close idle connections before the server does.
IDLE_TIMEOUT_SECONDS = 60.0
#: Seconds a client has to take each piece of an answer.
WRITE_TIMEOUT_SECONDS = 30.0
#: After refusing a request whose body was not read, at most this much of it is read and thrown
#: away (for at most LINGER_SECONDS), so that closing does not reset the connection before the
#: client has read the refusal.
LINGER_BYTES = 64 * 1024
LINGER_SECONDS = 1.0
#: The first byte of a TLS connection (a handshake record).
_TLS_HANDSHAKE_RECORD = 0x16


class ConnectionLimits(BaseModel):
    """Deadlines (seconds) and the bound on concurrent connections of the embedded server."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_connections: int = Field(MAX_CONNECTIONS, ge=1, le=65_536)
    head_timeout: float = Field(HEAD_TIMEOUT_SECONDS, gt=0, le=3600)
    body_timeout: float = Field(BODY_READ_TIMEOUT_SECONDS, gt=0, le=3600)
    idle_timeout: float = Field(IDLE_TIMEOUT_SECONDS, gt=0, le=3600)
    write_timeout: float = Field(WRITE_TIMEOUT_SECONDS, gt=0, le=3600)


#: Error codes the SDK knows (`sluice.exceptions`) where they differ from the status phrase.
_ERROR_CODES = {413: "payload_too_large", 429: "throttled"}


def json_error_body(status: int, message: str) -> bytes:
    """The API's error shape (`{error, message, details}`) for an answer of the HTTP layer."""
    try:
        error = _ERROR_CODES.get(status) or \
            HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        error = "bad_request"
    return json.dumps({"error": error, "message": message, "details": None}).encode()


def canned_response(status: int, message: str, extra_headers: str = "") -> bytes:
    """A whole `Connection: close` JSON answer, for when no handler exists to send one."""
    body = json_error_body(status, message)
    head = (f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
            f"content-type: application/json\r\n{extra_headers}"
            f"connection: close\r\ncontent-length: {len(body)}\r\n\r\n")
    return head.encode("ascii") + body


_BUSY = canned_response(503, "the server is serving its maximum number of connections; "
                             "retry shortly", "retry-after: 1\r\n")


class _DeadlineReader(io.RawIOBase):
    """Socket reads under the deadline of the request's current phase (see module docstring)."""

    def __init__(self, sock: socket.socket, limits: ConnectionLimits) -> None:
        self._sock, self._limits = sock, limits
        self._phase = "idle"
        self._deadline = 0.0

    def readable(self) -> bool:
        return True

    def expect_request(self) -> None:
        self._phase = "idle"

    def expect_body(self) -> None:
        self._phase = "body"

    def readinto(self, buffer: Any) -> int:
        if self._phase == "idle":
            timeout = self._limits.idle_timeout
        elif self._phase == "head":
            timeout = self._deadline - time.monotonic()
            if timeout <= 0:
                raise TimeoutError("the request head did not arrive in time")
        else:
            timeout = self._limits.body_timeout
        self._sock.settimeout(timeout)
        count = self._sock.recv_into(buffer)
        if count and self._phase == "idle":
            self._phase = "head"
            self._deadline = time.monotonic() + self._limits.head_timeout
        return count


class HardenedRequestHandler(BaseHTTPRequestHandler):
    """Deadlines on every read and write, JSON for every error http.server answers itself, no
    HTTP/0.9 (its answers have no status line), and `Expect: 100-continue` left to the
    subclass, which answers it only once the request is authorized (`continue_if_expected`)."""

    server: BoundedHttpServer

    def setup(self) -> None:
        super().setup()
        self.rfile.close()  # the socket file makefile() made: it would keep the socket open
        self._reader = _DeadlineReader(self.connection, self.server.limits)
        self.rfile = io.BufferedReader(self._reader)

    def handle_one_request(self) -> None:
        self._reader.expect_request()
        super().handle_one_request()

    def parse_request(self) -> bool:
        if not self.raw_requestline.strip():
            self.command, self.requestline, self.request_version = "", "", "HTTP/1.0"
            self.send_error(400, "the request line is empty: send `METHOD /path HTTP/1.1`")
            return False
        if not super().parse_request():
            return False
        if self.request_version == "HTTP/0.9":
            self.request_version = "HTTP/1.0"
            self.send_error(400, "HTTP/0.9 is not supported: send `METHOD /path HTTP/1.1`")
            return False
        return True

    def handle_expect_100(self) -> bool:
        return True  # decided by the subclass after the auth check (continue_if_expected)

    def continue_if_expected(self) -> None:
        """Tell a client waiting on `Expect: 100-continue` to send its body."""
        if (self.headers.get("expect") or "").strip().lower() == "100-continue" and \
                self.request_version >= "HTTP/1.1":
            self.connection.settimeout(self.server.limits.write_timeout)
            self.send_response_only(HTTPStatus.CONTINUE)
            self.end_headers()

    def declared_length(self, max_bytes: int) -> int | None:
        """The body's length from Content-Length, or None once a JSON error is sent and the
        connection set to close (where the body ends is unknown)."""
        if self.headers.get("transfer-encoding") is not None:
            self.send_error(411, "Transfer-Encoding is not supported: send the body with a "
                                 "Content-Length header")
            self.linger()
            return None
        declared = {value.strip() for value in self.headers.get_all("content-length") or ["0"]}
        text = declared.pop() if len(declared) == 1 else ", ".join(sorted(declared))
        # A length that is not one plain count would raise (no answer at all) or, negative,
        # make the read wait for the client to close the connection: refuse it.
        if not text.isascii() or not text.isdigit():
            self.send_error(400, f"Content-Length must be one number of bytes, got {text[:40]!r}")
            self.linger()
            return None
        length = int(text)
        if length > max_bytes:
            self.send_error(413, f"request body of {length} bytes is over the {max_bytes}-byte "
                                 "limit")
            self.linger()
            return None
        return length

    def read_body(self, length: int) -> bytes | None:
        """The request body, or None once a JSON error is sent: the client stopped sending
        before Content-Length bytes (400), or was too slow (408). Either closes the connection."""
        self._reader.expect_body()
        try:
            body = self.rfile.read(length)
        except TimeoutError:
            self.close_connection = True
            self.send_error(408, f"the request body did not arrive in time (no byte for "
                                 f"{self.server.limits.body_timeout:g} s)")
            return None
        if len(body) < length:
            self.close_connection = True
            self.send_error(400, f"the request body ended after {len(body)} of the "
                                 f"{length} bytes its Content-Length announced")
            return None
        return body

    def send_response(self, code: int, message: str | None = None) -> None:
        # Reads left the socket with their own timeout; an answer gets the write deadline.
        self.connection.settimeout(self.server.limits.write_timeout)
        super().send_response(code, message)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None
                   ) -> None:
        """http.server's own refusals (bad request line, too many headers, ...) as JSON."""
        if self.request_version == "HTTP/0.9":  # an answer without a status line otherwise
            self.request_version = "HTTP/1.0"
        if code == HTTPStatus.HTTP_VERSION_NOT_SUPPORTED:  # the client's mistake: a 4xx
            code, message = 400, f"{message or 'unsupported HTTP version'}: send HTTP/1.1"
        text = message
        if text is None:
            try:
                text = HTTPStatus(code).phrase
            except ValueError:
                text = "error"
        if explain:
            text = f"{text}: {explain}"
        self.log_error("code %d, message %s", code, text)
        body = json_error_body(code, text)
        self.close_connection = True
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("connection", "close")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def linger(self) -> None:
        """After refusing a request without reading its announced body: flush, half-close, and
        read (and drop) a little of what the client still sends, so that closing does not
        reset the connection before the client read the refusal; bounded in bytes and time,
        nothing is kept."""
        self.close_connection = True
        length = (self.headers.get("content-length") or "").strip()
        if self.headers.get("transfer-encoding") is None and length in ("", "0"):
            return  # nothing unread: a plain close is clean
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + LINGER_SECONDS
            left = LINGER_BYTES
            while left > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self.connection.settimeout(remaining)
                chunk = self.connection.recv(min(left, 16_384))
                if not chunk:
                    break
                left -= len(chunk)
        except OSError:
            pass  # the client is gone, or slow: either way there is nothing more to do

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        log.debug("%s - %s", self.address_string(), format % args)


class BoundedHttpServer(ThreadingHTTPServer):
    """A thread per connection up to `limits.max_connections`, optional TLS."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, server_address: Any, handler: Any, *,
                 limits: ConnectionLimits | None = None,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.limits = limits or ConnectionLimits()
        self.ssl_context = ssl_context
        self._slots = threading.BoundedSemaphore(self.limits.max_connections)
        super().__init__(server_address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self._refuse_busy(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def _refuse_busy(self, request: socket.socket) -> None:
        # In the accept loop: never block here. Under TLS a plain answer would be noise.
        if self.ssl_context is None:
            try:
                request.setblocking(False)
                request.send(_BUSY)
            except OSError:
                pass
        self.shutdown_request(request)

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.ssl_context is None:
            super().finish_request(request, client_address)
            return
        secured = self._handshake(request)
        if secured is None:
            return
        try:
            super().finish_request(secured, client_address)
        finally:
            secured.close()

    def _handshake(self, request: socket.socket) -> ssl.SSLSocket | None:
        """The TLS side of a new connection, or None (the reason answered or logged)."""
        assert self.ssl_context is not None
        try:
            request.settimeout(self.limits.idle_timeout)
            first = request.recv(1, socket.MSG_PEEK)
            if not first:
                return None
            if first[0] != _TLS_HANDSHAKE_RECORD:
                request.settimeout(self.limits.write_timeout)
                request.sendall(canned_response(
                    400, "this server speaks HTTPS: use an https:// URL"))
                return None
            request.settimeout(self.limits.head_timeout)
            return self.ssl_context.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError) as exc:
            log.debug("TLS handshake failed: %s", exc)
            return None

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, OSError):  # resets, timeouts, TLS errors: the client's doing
            log.debug("connection from %s ended: %r", client_address, error)
            return
        log.exception("error while serving %s", client_address)


def server_tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server-side context (TLS 1.2 or later) for a PEM certificate (with its chain) and its
    unencrypted PEM key; a ConfigurationError naming the file and the fix otherwise."""
    from sluice.exceptions import ConfigurationError

    for flag, path in (("--tls-cert", cert), ("--tls-key", key)):
        if not Path(path).is_file():
            raise ConfigurationError(f"{flag} {path}: no such file; pass a PEM file "
                                     "(the certificate with its chain, and its private key)")

    def no_password() -> str:
        raise ConfigurationError(f"the TLS key {key} is encrypted; pass an unencrypted PEM key "
                                 "(kept 0600), e.g. `openssl pkey -in KEY -out PLAIN_KEY`")

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(cert), str(key), password=no_password)
    except ssl.SSLError as exc:
        raise ConfigurationError(
            f"cannot use the TLS certificate {cert} with the key {key} ({exc.reason or exc}); "
            "pass a PEM certificate and its matching PEM private key") from None
    return context


def cleartext_warning(host: str, tls: bool) -> str | None:
    """The warning to print when the server is reachable beyond this machine without TLS."""
    from .server import is_loopback

    if tls or is_loopback(host):
        return None
    return (f"WARNING: serving {host} without TLS: tokens and data cross the network in clear "
            "text: pass --tls-cert/--tls-key, or put a TLS proxy in front")
