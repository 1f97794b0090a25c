"""Run loggers: `get_run_logger()` and `print` capture, shipped to the run's reporter."""

from __future__ import annotations

import builtins
import logging
import sys
import threading
from datetime import datetime, timezone
from typing import Any

from .engine.context import flow_run_ctx, get_run_context, task_run_ctx
from .models import MAX_LOG_MESSAGE_CHARS, LogLevel, LogRecord, new_id
from .models._fast import construct
from .redaction import redact

RUN_LOGGER = "sluice.runs"
_LEVELS = {10: LogLevel.DEBUG, 20: LogLevel.INFO, 30: LogLevel.WARNING, 40: LogLevel.ERROR,
           50: LogLevel.CRITICAL}
_configured = False
_configure_lock = threading.Lock()
_original_print = builtins.print


class RunLoggerAdapter(logging.LoggerAdapter):
    """A logger bound to one flow run (and task run): records go to the run's logs."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        kwargs["extra"] = {**self.extra, **kwargs.get("extra", {})}  # type: ignore[dict-item]
        return msg, kwargs


class RunLogHandler(logging.Handler):
    """Turns stdlib log records of run loggers into `LogRecord`s for the run's reporter."""

    def emit(self, record: logging.LogRecord) -> None:
        reporter = getattr(record, "sluice_reporter", None)
        flow_run_id = getattr(record, "sluice_flow_run_id", None)
        if reporter is None or flow_run_id is None:
            return
        try:
            message = record.getMessage()
            if record.exc_info:
                message = f"{message}\n{logging.Formatter().formatException(record.exc_info)}"
            if len(message) > MAX_LOG_MESSAGE_CHARS:
                message = message[: MAX_LOG_MESSAGE_CHARS - 1] + "…"
            reporter.report_log(construct(LogRecord, {
                "id": new_id(),
                "flow_run_id": flow_run_id,
                "task_run_id": getattr(record, "sluice_task_run_id", None),
                "timestamp": datetime.fromtimestamp(record.created, timezone.utc),
                "level": _LEVELS.get(record.levelno, LogLevel.INFO),
                "logger": record.name,
                "message": message,
            }))
        except Exception:  # a log line must never break the run
            self.handleError(record)


class _ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        run = getattr(record, "sluice_run_label", "")
        base = f"{self.formatTime(record, '%H:%M:%S')}.{int(record.msecs):03d} | " \
               f"{record.levelname:<7} | {run} - {record.getMessage()}"
        if record.exc_info:
            base = f"{base}\n{self.formatException(record.exc_info)}"
        return redact(base)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is at emit time (pytest and the CLI swap it)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def configure_run_logging(level: str | int = "INFO") -> None:
    """Attach the run handlers once (at the first flow run, never at import)."""
    global _configured
    if _configured:
        return
    with _configure_lock:
        if _configured:
            return
        logger = logging.getLogger(RUN_LOGGER)
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
        logger.addHandler(RunLogHandler(level=logging.DEBUG))
        console = _StderrHandler()
        console.setFormatter(_ConsoleFormatter())
        console.setLevel(level if isinstance(level, int) else level.upper())
        logger.addHandler(console)
        _configured = True


def get_run_logger(**extra: Any) -> logging.LoggerAdapter:
    """The logger of the current flow run or task run. Its lines are stored with the run (see
    `sluice flow-run logs`) and shown on the console. Raises `MissingContextError` outside a
    run."""
    ctx = get_run_context()
    return run_logger_for(ctx, **extra)


def run_logger_for(ctx: Any, **extra: Any) -> logging.LoggerAdapter:
    task_run = getattr(ctx, "task_run", None)
    flow_ctx = ctx.flow_run_context if task_run is not None else ctx
    flow_run = flow_ctx.flow_run
    label = (f"Task run {task_run.name!r}" if task_run is not None
             else f"Flow run {flow_run.name!r}")
    return RunLoggerAdapter(logging.getLogger(RUN_LOGGER), {
        "sluice_reporter": flow_ctx.reporter,
        "sluice_flow_run_id": flow_run.id,
        "sluice_task_run_id": task_run.id if task_run is not None else None,
        "sluice_run_label": label,
        **extra,
    })


def _print_to_run_log(*args: Any, sep: str | None = " ", end: str | None = "\n",
                      file: Any = None, flush: bool = False) -> None:
    ctx = task_run_ctx.get() or flow_run_ctx.get()
    if ctx is None or not ctx.log_prints or file not in (None, sys.stdout):
        _original_print(*args, sep=sep, end=end, file=file, flush=flush)
        return
    message = (sep if sep is not None else " ").join(str(a) for a in args)
    run_logger_for(ctx).info(message, extra={"sluice_print": True})


def capture_prints() -> None:
    """Route `print` inside runs with `log_prints=True` to the run logger (other code, and runs
    without the option, print as usual)."""
    if builtins.print is not _print_to_run_log:
        builtins.print = _print_to_run_log
