"""A flow process started ahead of time, imports done, waiting for its run (see
`execute.standby`). Only for runs on the worker's own interpreter; a run with its own
requirements venv starts a fresh process.

Standby processes are started from one long-lived thread: a flow process asks the kernel to kill
it when the thread that started it ends (`fence.die_with_parent`), so that thread must live as
long as the worker.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

from .credentials import without_worker_credentials
from .processes import LeasePipe, spawn


class Standby:
    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._process: subprocess.Popen[bytes] | None = None
        self._pipe: LeasePipe | None = None
        self._lock = threading.Lock()
        self._refill = threading.Event()
        self._closing = False
        self._thread: threading.Thread | None = None

    def _spawn(self) -> tuple[subprocess.Popen[bytes], LeasePipe]:
        return spawn([sys.executable, "-m", "sluice_worker.execute", "--standby"],
                     env={**without_worker_credentials(dict(os.environ)),
                          "PYTHONUNBUFFERED": "1"}, cwd=None,
                     stdin=subprocess.PIPE)

    def prepare(self) -> None:
        """Have a process waiting (call when the worker starts; it is refilled after each use
        by the standby thread)."""
        if not self.enabled:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._keep_one_ready, daemon=True,
                                                name="sluice-standby")
                self._thread.start()
        self._refill.set()

    def _keep_one_ready(self) -> None:
        while True:
            self._refill.wait()
            self._refill.clear()
            with self._lock:
                if self._closing:
                    return
                if self._process is None or self._process.poll() is not None:
                    if self._pipe is not None:
                        self._pipe.close()
                    try:
                        self._process, self._pipe = self._spawn()
                    except OSError:
                        self._process, self._pipe = None, None

    def take(self, python: str, env: dict[str, str], cwd: str
             ) -> tuple[subprocess.Popen[bytes], LeasePipe] | None:
        """The waiting process, now running this run, and its lease pipe; None when there is
        none to use."""
        if not self.enabled or python != sys.executable:
            return None
        with self._lock:
            process, pipe = self._process, self._pipe
            self._process, self._pipe = None, None
        self._refill.set()
        if process is None or pipe is None:
            return None
        if process.poll() is not None:
            pipe.close()
            return None
        try:
            assert process.stdin is not None
            process.stdin.write(json.dumps({"env": env, "cwd": cwd}).encode() + b"\n")
            process.stdin.close()
        except OSError:
            pipe.close()
            return None
        return process, pipe

    def close(self) -> None:
        with self._lock:
            self._closing = True
            process, pipe = self._process, self._pipe
            self._process, self._pipe = None, None
        self._refill.set()
        if process is not None and process.poll() is None:
            try:
                assert process.stdin is not None
                process.stdin.close()  # an empty line: the process exits at once
                process.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                process.kill()
        if pipe is not None:
            pipe.close()
        if self._thread is not None:
            self._thread.join(timeout=5)
