"""Inside the flow process: `sys.stdout`/`sys.stderr` lines become log lines of the run (and of
the task run printing them), reported before the run's final state."""

from __future__ import annotations

import io
import threading
from datetime import datetime, timezone
from typing import Any, TextIO

from sluice.engine.context import task_run_ctx
from sluice.models import LogLevel, LogRecord, new_id
from sluice.models._fast import construct
from sluice.redaction import redact


class RunOutput(io.TextIOBase):
    """A text stream that reports each complete line; optionally also writes through."""

    def __init__(self, reporter: Any, flow_run_id: str, name: str, level: LogLevel,
                 passthrough: TextIO | None) -> None:
        super().__init__()
        self.reporter, self.flow_run_id, self.name, self.level = (reporter, flow_run_id, name,
                                                                 level)
        self.passthrough = passthrough
        self._pending: dict[int, str] = {}  # per thread: tasks print concurrently
        self._lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if self.passthrough is not None:  # the worker keeps stderr lines for Crashed messages
            self.passthrough.write(redact(text))
        ident = threading.get_ident()
        with self._lock:
            buffered = self._pending.pop(ident, "") + text
            *lines, rest = buffered.split("\n")
            if rest:
                self._pending[ident] = rest
        for line in lines:
            self._report(line)
        return len(text)

    def flush(self) -> None:
        if self.passthrough is not None:
            self.passthrough.flush()

    def close_lines(self) -> None:
        """Report what is left without a newline (at exit)."""
        with self._lock:
            pending, self._pending = list(self._pending.values()), {}
        for line in pending:
            self._report(line)

    def _report(self, line: str) -> None:
        task = task_run_ctx.get()
        self.reporter.report_log(construct(LogRecord, {
            "id": new_id(), "flow_run_id": self.flow_run_id,
            "task_run_id": task.task_run.id if task is not None else None,
            "timestamp": datetime.now(timezone.utc), "level": self.level, "logger": self.name,
            "message": line[:32_000],
        }))
