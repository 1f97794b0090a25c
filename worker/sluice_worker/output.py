"""The flow process's stdout and stderr, line by line, as log lines of its run."""

from __future__ import annotations

import collections
import threading
from datetime import datetime, timezone
from typing import IO, Any

from sluice.models import LogLevel, LogRecord, new_id
from sluice.models._fast import construct

#: Lines of stderr kept for the Crashed message of a process that died.
TAIL_LINES = 20


class OutputPump:
    """Reads the flow process's pipes in threads. Python-level output is reported by the
    process itself (`streams.RunOutput`), so what reaches stdout here was written below Python
    (a C library, a child process) and is reported; stderr lines are kept for the Crashed
    message."""

    def __init__(self, reporter: Any, flow_run_id: str, echo: Any = None) -> None:
        self.reporter = reporter
        self.flow_run_id = flow_run_id
        self.echo = echo
        self.tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self._threads: list[threading.Thread] = []

    def follow(self, pipe: IO[bytes], stream: str) -> None:
        thread = threading.Thread(target=self._pump, args=(pipe, stream), daemon=True,
                                  name=f"sluice-{stream}-{self.flow_run_id[-6:]}")
        thread.start()
        self._threads.append(thread)

    def _pump(self, pipe: IO[bytes], stream: str) -> None:
        level = LogLevel.WARNING if stream == "stderr" else LogLevel.INFO
        for raw in iter(pipe.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if self.echo is not None:
                self.echo(self.flow_run_id, stream, line)
            if stream == "stderr":
                self.tail.append(line)
                continue
            self.reporter.report_log(construct(LogRecord, {
                "id": new_id(), "flow_run_id": self.flow_run_id, "task_run_id": None,
                "timestamp": datetime.now(timezone.utc), "level": level, "logger": stream,
                "message": line[:32_000],
            }))
        pipe.close()

    def join(self, timeout: float = 5.0) -> None:
        for thread in self._threads:
            thread.join(timeout)
