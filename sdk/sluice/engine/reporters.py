"""Which reporter a new top-level flow run uses (an explicit one beats settings)."""

from __future__ import annotations

import contextvars
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from ..reporting import InMemoryReporter, Reporter

_override: contextvars.ContextVar[Reporter | None] = contextvars.ContextVar(
    "sluice_reporter_override", default=None
)
_local_reporter: InMemoryReporter | None = None
_local_lock = threading.Lock()


@contextmanager
def use_reporter(reporter: Reporter) -> Iterator[Reporter]:
    """Send the flow runs started inside this block to `reporter` (tests, benchmarks, embedding
    Sluice in another program)."""
    token = _override.set(reporter)
    try:
        yield reporter
    finally:
        _override.reset(token)


def local_reporter() -> InMemoryReporter:
    """The in-memory reporter of runs made in this process with no control plane configured."""
    global _local_reporter
    with _local_lock:
        if _local_reporter is None:
            _local_reporter = InMemoryReporter()
            print(
                "Sluice: no control plane configured; runs are tracked in memory only. "
                "Start one with `sluice server start` to see them in `sluice flow-run ls`.",
                file=sys.stderr,
            )
        return _local_reporter


def reporter_for_new_run() -> Reporter:
    explicit = _override.get()
    if explicit is not None:
        return explicit
    from ..profiles import resolve_connection

    connection = resolve_connection()
    if connection is not None:
        from ..client.reporter import shared_http_reporter

        return shared_http_reporter(connection)
    return local_reporter()
