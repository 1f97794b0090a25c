"""Real processes for end-to-end tests: the embedded server, workers and the CLI, each with
its own SLUICE_HOME, on free ports. Every wait is bounded."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

SLUICE = [sys.executable, "-m", "sluice.cli"]


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.1
             ) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Process:
    def __init__(self, args: list[str], env: dict[str, str], log: Path,
                 cwd: Path | None = None) -> None:
        self.log_path = log
        self._log = open(log, "ab")
        self.popen = subprocess.Popen(args, env=env, cwd=cwd, stdout=self._log,
                                      stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      start_new_session=True)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def send_signal(self, sig: int) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        self.send_signal(sig)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.send_signal(signal.SIGKILL)
            return self.popen.wait(10)
        finally:
            self._log.close()


class Sluice:
    """One installation: a SLUICE_HOME, a server on a fixed free port, workers, the CLI."""

    def __init__(self, home: Path, port: int) -> None:
        self.home, self.port = home, port
        self.url = f"http://127.0.0.1:{port}"
        self.server: Process | None = None
        self.workers: list[Process] = []
        self.env = {**os.environ, "SLUICE_HOME": str(home), "PYTHONUNBUFFERED": "1"}
        for var in ("SLUICE_API_URL", "SLUICE_PROFILE", "SLUICE_API_TOKEN"):
            self.env.pop(var, None)

    def start_server(self, *extra: str) -> Process:
        self.server = Process([*SLUICE, "server", "start", "--port", str(self.port),
                               "--scheduler-interval", "0.5", *extra], self.env,
                              self.home.parent / f"server-{len(self.workers)}-{time.time()}.log")
        wait_for(self._healthy, 90, f"the server on {self.url}\n{self.server.output()}", 0.1)
        return self.server

    @property
    def token(self) -> str:
        """The operator token, from the `local` profile the server writes (the one it made on
        first start, or the one it was given)."""
        import tomllib

        profiles = tomllib.loads((self.home / "profiles.toml").read_text())
        return profiles["profiles"]["local"]["api_token"]

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/health", timeout=1,
                             headers={"authorization": f"Bearer {self.token}"}).status_code == 200
        except (httpx.HTTPError, OSError, KeyError):
            return False

    def stop_server(self, sig: int = signal.SIGTERM) -> int:
        assert self.server is not None
        return self.server.stop(sig)

    def start_worker(self, *extra: str, name: str | None = None) -> Process:
        name = name or f"w{len(self.workers)}"
        worker = Process([*SLUICE, "worker", "start", "--name", name, "--poll-wait", "2",
                          "--heartbeat-interval", "0.5", *extra], self.env,
                         self.home.parent / f"worker-{name}.log")
        self.workers.append(worker)
        return worker

    def cli(self, *args: str, check: bool = True, timeout: float = 60,
            cwd: Path | None = None, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
        """Run `sluice ARGS`; `env` adds variables (e.g. COLUMNS) to the installation's."""
        done = subprocess.run([*SLUICE, *args], env={**self.env, **(env or {})},
                              capture_output=True, text=True, timeout=timeout, cwd=cwd)
        if check and done.returncode != 0:
            raise AssertionError(f"sluice {' '.join(args)} exited {done.returncode}:\n"
                                 f"{done.stdout}\n{done.stderr}")
        return done

    def cli_json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "--json").stdout)

    def python(self, script: Path, *args: str, timeout: float = 120
               ) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(script), *args], env=self.env,
                              capture_output=True, text=True, timeout=timeout)

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10,
                            headers={"authorization": f"Bearer {self.token}"})

    def run_state(self, flow_run_id: str) -> dict[str, Any]:
        with self.api() as api:
            return api.get(f"/flow-runs/{flow_run_id}").json()

    def wait_terminal(self, flow_run_id: str, timeout: float = 60) -> dict[str, Any]:
        terminal = {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"}
        return wait_for(lambda: (lambda r: r if r["state"]["type"] in terminal else None)(
            self.run_state(flow_run_id)), timeout, f"run {flow_run_id} to end")

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        if self.server is not None and self.server.popen.poll() is None:
            self.server.stop()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def created_id(output: str) -> str:
    match = re.search(r"flow run ([0-9a-f-]{32,36})", output)
    assert match, output
    return match.group(1)
