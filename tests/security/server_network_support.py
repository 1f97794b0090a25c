"""Raw-socket helpers for the embedded server's network tests (test_server_network*.py)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

TOKEN = "t" * 40


@dataclass
class RawAnswer:
    """What came back on a raw connection: the first answer, or nothing."""

    data: bytes
    reset: bool = False

    @property
    def status(self) -> int | None:
        if not self.data.startswith(b"HTTP/1."):
            return None
        return int(self.data.split(b" ", 2)[1])

    @property
    def body(self) -> bytes:
        return self.data.partition(b"\r\n\r\n")[2]

    def json(self) -> Any:
        return json.loads(self.body)


def read_until_closed(sock: socket.socket, timeout: float = 10.0) -> RawAnswer:
    """Everything the server sends until it closes the connection (or `timeout` passes)."""
    sock.settimeout(timeout)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    except ConnectionResetError:
        return RawAnswer(b"".join(chunks), reset=True)
    except TimeoutError:
        pass
    return RawAnswer(b"".join(chunks))


def exchange(port: int, data: bytes, *, half_close: bool = True, timeout: float = 10.0
             ) -> RawAnswer:
    """Send raw bytes to 127.0.0.1:port, and read the answer until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except OSError:  # broken pipe, reset, not connected
            pass  # the server answered and closed before taking everything: read its answer
        return read_until_closed(sock, timeout)


def first_answer(data: bytes) -> bytes:
    """The first HTTP answer of a connection's bytes (its head and Content-Length body)."""
    head, _, rest = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    return head + b"\r\n\r\n" + rest[:length]


def handler_threads() -> int:
    """Threads the server runs for connections (socketserver names them after their target)."""
    return sum("process_request_thread" in t.name for t in threading.enumerate())


def eventually(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
    """Poll until `predicate()` is truthy (a generous bound, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            assert value, f"never happened: {what}"
            return value
        time.sleep(0.05)
