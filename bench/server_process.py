"""An embedded server in its own process (so it does not share the benchmark's GIL)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

import httpx


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _token(home: str) -> str:
    """The operator token the server wrote into its `local` profile (servers always need one)."""
    import tomllib

    with open(os.path.join(home, "profiles.toml"), "rb") as fh:
        return tomllib.load(fh)["profiles"]["local"]["api_token"]


def connection(url: str):  # noqa: ANN201 - sluice.profiles.Connection, imported lazily
    """How a benchmark reaches the server `embedded_server` started: its URL and token."""
    from sluice.profiles import Connection

    return Connection(api_url=url, api_token=_token(os.environ["SLUICE_BENCH_HOME"]))


def split_cores() -> tuple[set[int], set[int]] | None:
    """(the benchmark's cores, the server's core): the last core this process may use for the
    server, the others for the benchmark; None where that cannot be done (one core, or no
    CPU affinity on this platform)."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return None
    return set(cores[:-1]), {cores[-1]}


@contextlib.contextmanager
def embedded_server(*extra: str, cores: set[int] | None = None) -> Iterator[str]:
    """Yields the URL of a fresh server (its own SLUICE_HOME), stopped afterwards; `cores`:
    the CPUs the server may run on (default: any)."""
    home = tempfile.mkdtemp(prefix="sluice-bench-")
    port = _free_port()
    env = {**os.environ, "SLUICE_HOME": home}
    server = subprocess.Popen([sys.executable, "-m", "sluice.cli", "server", "start", "--port",
                               str(port), "--scheduler-interval", "0.5", *extra], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if cores is not None:
        os.sched_setaffinity(server.pid, cores)  # before it starts its threads: they inherit it
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                headers = {"authorization": f"Bearer {_token(home)}"}
                if httpx.get(f"{url}/health", timeout=1, headers=headers).status_code == 200:
                    break
            except (httpx.HTTPError, OSError, KeyError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the embedded server did not start")
            time.sleep(0.1)
        os.environ["SLUICE_BENCH_HOME"] = home
        yield url
    finally:
        server.terminate()
        server.wait(30)
