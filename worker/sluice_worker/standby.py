"""A flow process started ahead of time, imports done, waiting for its run (see
`execute.standby`). Only for runs on the worker's own interpreter; a run with its own
requirements venv starts a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading


class Standby:
    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    def _spawn(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "sluice_worker.execute", "--standby"],
                                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.PIPE, start_new_session=True)

    def prepare(self) -> None:
        """Have a process waiting (call when the worker starts and after each use)."""
        if not self.enabled:
            return
        with self._lock:
            if self._process is None or self._process.poll() is not None:
                self._process = self._spawn()

    def take(self, python: str, env: dict[str, str], cwd: str
             ) -> subprocess.Popen[bytes] | None:
        """The waiting process, now running this run; None when there is none to use."""
        if not self.enabled or python != sys.executable:
            return None
        with self._lock:
            process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return None
        try:
            assert process.stdin is not None
            process.stdin.write(json.dumps({"env": env, "cwd": cwd}).encode() + b"\n")
            process.stdin.close()
        except OSError:
            return None
        threading.Thread(target=self.prepare, daemon=True, name="sluice-standby").start()
        return process

    def close(self) -> None:
        with self._lock:
            process, self._process = self._process, None
        if process is not None and process.poll() is None:
            try:
                assert process.stdin is not None
                process.stdin.close()  # an empty line: the process exits at once
                process.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                process.kill()
