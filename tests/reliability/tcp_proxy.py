"""A TCP proxy on a loopback port that a test can cut and heal: one worker's network path to the
API, so only that worker is partitioned.

Two ways to cut (`cut(mode)`), as real partitions go:

* `reset`: open connections are reset and new ones are accepted and reset at once (the client
  sees "connection reset" at once);
* `blackhole`: nothing is forwarded any more and nothing answered; open and new connections just
  hang (the client waits for its timeouts). Healing resets what hung.

After `heal()` it notes every response it forwards, paired with its request line (`exchanges`:
HTTP/1.1 answers a connection's requests in order), so a test can see what a stale worker was
told.
"""

from __future__ import annotations

import re
import socket
import struct
import threading

_STATUS = re.compile(rb"HTTP/1\.[01] (\d{3}) ")
_REQUEST = re.compile(rb"(GET|POST|PUT|PATCH|DELETE|HEAD) (\S+) HTTP/1\.[01]\r\n")


class TcpProxy:
    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.mode: str | None = None  # None while traffic flows, else how it is cut
        self._healed = threading.Event()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._held: list[socket.socket] = []
        #: (method, path, status) of each exchange forwarded after `heal()`.
        self.exchanges: list[tuple[str, str, int]] = []
        self._sever: tuple[str, float] | None = None
        #: Set once `sever_after_response` struck.
        self.severed = threading.Event()

    def sever_after_response(self, path_part: str, seconds: float) -> None:
        """Once: let the first request whose path contains `path_part` reach the server, drop
        its answer, and cut (reset) for `seconds`: the caller cannot know what happened."""
        self._sever = (path_part, seconds)

    @property
    def statuses(self) -> list[int]:
        return [status for _, _, status in self.exchanges]

    def start(self) -> TcpProxy:
        threading.Thread(target=self._accept, daemon=True, name="proxy-accept").start()
        return self

    def cut(self, mode: str = "reset") -> None:
        assert mode in ("reset", "blackhole"), mode
        self.mode = mode
        if mode == "reset":
            self._reset_open()

    def heal(self) -> None:
        self._reset_open()  # what hung in a blackhole fails now, and is retried
        with self._lock:
            held, self._held = self._held, []
        for sock in held:
            _reset(sock)
        self._healed.set()
        self.mode = None

    def close(self) -> None:
        self._closed.set()
        self.cut("reset")
        self.heal()
        self.listener.close()

    def _reset_open(self) -> None:
        with self._lock:
            sockets, self._open = list(self._open), set()
        for sock in sockets:
            _reset(sock)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.mode == "reset":
                _reset(client)
                continue
            if self.mode == "blackhole":
                with self._lock:
                    self._held.append(client)  # accepted, never answered
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _reset(client)
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open |= {client, upstream}
            requests: list[tuple[str, str]] = []
            threading.Thread(target=self._pipe, args=(client, upstream, requests, False),
                             daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, requests, True),
                             daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket,
              requests: list[tuple[str, str]], responses: bool) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data or self.mode == "reset":
                    break
                if self.mode == "blackhole":
                    continue  # swallowed: the peer waits for an answer that never comes
                if not responses:
                    requests += [(m.group(1).decode(), m.group(2).decode())
                                 for m in _REQUEST.finditer(data)]
                else:
                    for match in _STATUS.finditer(data):
                        method, path = requests.pop(0) if requests else ("?", "?")
                        if self._healed.is_set():
                            self.exchanges.append((method, path, int(match.group(1))))
                        sever = self._sever
                        if sever is not None and sever[0] in path:
                            self._sever = None
                            self.cut("reset")
                            threading.Timer(sever[1], self.heal).start()
                            self.severed.set()
                            return  # the answer is never forwarded (the finally resets)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                _reset(sock)
            with self._lock:
                self._open -= {source, sink}


def _reset(sock: socket.socket) -> None:
    """Reset the connection (SO_LINGER 0). `shutdown` first: a thread blocked in `recv` on this
    socket holds the file open, so `close` alone would neither wake it nor tell the peer."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass
