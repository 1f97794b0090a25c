"""Keep-alive HTTP/1.1 posts for the reporter's events batches (issue 20).

A flow reporting to a control plane sends a batch of up to 500 records every few milliseconds
while its own threads keep the GIL busy. Through httpx each request passes several layers in
Python (the request model, the auth flow, h11's state machine, response streams), and each of
the steps between two socket calls waits for the GIL again, up to a switch interval (5 ms)
while the flow's threads run: a batch the server stored in 10 ms took 40-100 ms to come back,
the records piled up, and a map of 10,000 tasks waited ~120 ms at its end for the backlog.
`http.client` writes a request with its body in one call and reads a small answer in one
read, so a batch costs the flow far less (measured in `bench/task_overhead.py`, README).

Only the events routes take this path (`SluiceClient.send_events`), over one connection per
thread that sends (the reporter's couriers), with the client's own headers, TLS context and
SigV4 signature; everything else the client does stays on httpx. With a proxy configured
for the control plane's scheme (`HTTP_PROXY`, `HTTPS_PROXY` or `ALL_PROXY`, whatever
`NO_PROXY` says: httpx decides that), `KeepAlivePoster.for_connection` gives None and batches
take httpx, which speaks to proxies.
Failures are raised as httpx's transport errors, so `transport.send` retries and maps them
exactly as it does httpx's own.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
import urllib.request
import weakref
from collections.abc import Callable, Mapping
from typing import Any, NoReturn
from urllib.parse import urlsplit

import httpx


#: Signs one request: (method, full URL, body) -> the headers to add (SigV4 on AWS).
Signer = Callable[[str, str, bytes], Mapping[str, str]]


#: Seconds a connection may sit idle before it is closed rather than used again (httpx's
#: keep-alive expiry): servers close idle connections after a while (the embedded server
#: after 60 s), and an idle connection holds one of the embedded server's threads.
KEEPALIVE_EXPIRY_SECONDS = 5.0


class KeepAlivePoster:
    """POSTs JSON bodies over keep-alive connections, one per calling thread.

    A connection idle for `KEEPALIVE_EXPIRY_SECONDS` is replaced before use. One that the
    server closed anyway (or that broke) is noticed on the next request, which is sent again
    once on a new connection: every request sent this way is idempotent (events batches are,
    by record ids and versions, their state by its transition id)."""

    def __init__(self, api_url: str, *, headers: Mapping[str, str], timeout: httpx.Timeout,
                 verify: ssl.SSLContext | bool = True, sign: Signer | None = None) -> None:
        """`verify`: the TLS trust of an https API, as httpx takes it (its context is built at
        the first connection: loading a CA bundle costs a client that never sends a batch
        ~10 ms)."""
        parts = urlsplit(api_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {api_url!r}")
        self._https = parts.scheme == "https"
        # The port always given: http.client would read a bare IPv6 address's colons as one.
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._prefix = parts.path.rstrip("/")  # an API Gateway stage: /prod
        # Lower-case names: a signature's `Authorization` replaces a bearer token's.
        self._headers = {name.lower(): value for name, value in headers.items()}
        self._timeout = timeout
        self._verify = verify
        self._context: ssl.SSLContext | None = None
        self._sign = sign
        self._local = threading.local()
        # Weak: a thread that ends takes its connection along (`_Held` closes it).
        self._open: weakref.WeakSet[http.client.HTTPConnection] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._closed = False

    @classmethod
    def for_connection(cls, api_url: str, **options: Any) -> KeepAlivePoster | None:
        """A poster for `api_url`, or None when the environment names a proxy for its scheme
        (httpx then decides, `NO_PROXY` included, whether to use it) or the URL is not one
        this poster speaks to."""
        parts = urlsplit(api_url)
        proxies = urllib.request.getproxies()
        if proxies.get(parts.scheme) or proxies.get("all"):
            return None
        try:
            return cls(api_url, **options)
        except ValueError:
            return None

    def post(self, path: str, body: bytes, *, timeout: float | None = None) -> httpx.Response:
        """One POST of a JSON `body` to `path` (relative to the API's URL); the answer as an
        `httpx.Response`. Raises `httpx.TransportError` subclasses (connect, timeout, read,
        protocol) like httpx would."""
        if self._closed:
            raise RuntimeError("cannot send a request: the client has been closed")
        headers = {**self._headers, "content-type": "application/json"}
        target = self._prefix + path
        if self._sign is not None:
            headers.pop("authorization", None)
            headers.update((name.lower(), value) for name, value in
                           self._sign("POST", self._origin + target, body).items())
        conn, reused = self._connection()
        try:
            return self._exchange(conn, target, body, headers, timeout)
        except (OSError, http.client.HTTPException) as exc:
            self._drop(conn)
            # A timeout is the server being slow, not a stale connection (retries are send's);
            # anything else on a connection that served before is sent once more on a new one
            # (a server's close seen only now: reset, EOF, TLS EOF without close_notify).
            if not reused or isinstance(exc, TimeoutError):
                self._reraise(exc)
        except BaseException as exc:
            self._drop(conn)
            self._reraise(exc)
        conn, _ = self._connection()
        try:
            return self._exchange(conn, target, body, headers, timeout)
        except BaseException as exc:
            self._drop(conn)
            self._reraise(exc)

    def close(self) -> None:
        """Close every connection; later posts raise."""
        with self._lock:
            self._closed = True
            conns, self._open = list(self._open), weakref.WeakSet()
        for conn in conns:
            conn.close()

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        """This thread's connection (a new one if it has none) and whether it served before."""
        held = getattr(self._local, "held", None)
        if held is not None:
            if held.conn.sock is not None and \
                    time.monotonic() - held.used < KEEPALIVE_EXPIRY_SECONDS:
                held.used = time.monotonic()
                return held.conn, True
            self._drop(held.conn)
        connect = self._timeout.connect
        if self._https:
            if self._context is None:  # two threads may both build one: the same trust
                self._context = httpx.create_ssl_context(verify=self._verify)
            conn = http.client.HTTPSConnection(self._host, self._port, timeout=connect,
                                               context=self._context)
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=connect)
        try:
            conn.connect()
        except BaseException as exc:
            conn.close()
            self._reraise(exc, connecting=True)
        with self._lock:
            if self._closed:
                conn.close()
                raise RuntimeError("cannot send a request: the client has been closed")
            self._open.add(conn)
        self._local.held = _Held(conn)
        return conn, False

    def _exchange(self, conn: http.client.HTTPConnection, target: str, body: bytes,
                  headers: dict[str, str], timeout: float | None) -> httpx.Response:
        read = timeout if timeout is not None else self._timeout.read
        conn.sock.settimeout(read)  # type: ignore[union-attr]
        conn.request("POST", target, body=body, headers=headers)
        answer = conn.getresponse()
        content = answer.read()
        if answer.will_close:  # the server said so: the next request opens a new connection
            self._drop(conn)
        return httpx.Response(answer.status, headers=answer.getheaders(), content=content,
                              request=httpx.Request("POST", self._origin + target))

    def _drop(self, conn: http.client.HTTPConnection) -> None:
        conn.close()
        with self._lock:
            self._open.discard(conn)
        held = getattr(self._local, "held", None)
        if held is not None and held.conn is conn:
            self._local.held = None

    def _reraise(self, exc: BaseException, *, connecting: bool = False) -> NoReturn:
        """Raise httpx's error for `exc` (from `http.client` or the socket), the "closed"
        error if `close()` pulled the connection away meanwhile, or `exc` itself."""
        if self._closed:
            raise RuntimeError("cannot send a request: the client has been closed") from exc
        error = _transport_error(exc, connecting=connecting)
        if error is exc:
            raise exc
        raise error from exc


class _Held:
    """A thread's connection, closed when the thread ends (its thread-local data goes)."""

    __slots__ = ("conn", "used")

    def __init__(self, conn: http.client.HTTPConnection) -> None:
        self.conn = conn
        self.used = time.monotonic()

    def __del__(self) -> None:
        try:
            self.conn.close()
        except Exception:  # noqa: BLE001 - at interpreter exit, nothing to tell anyone
            pass


def _transport_error(exc: BaseException, *, connecting: bool = False) -> BaseException:
    """httpx's error for what `http.client` or the socket raised (others pass through)."""
    message = str(exc) or type(exc).__name__
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return httpx.ConnectTimeout(message) if connecting else httpx.ReadTimeout(message)
    if connecting and isinstance(exc, (OSError, ssl.SSLError)):
        return httpx.ConnectError(message)
    if isinstance(exc, (http.client.HTTPException, ConnectionError)):
        return httpx.RemoteProtocolError(message)
    if isinstance(exc, OSError):
        return httpx.ReadError(message)
    return exc
