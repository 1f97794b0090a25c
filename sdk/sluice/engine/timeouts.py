"""Timeouts for sync code: run it in a helper thread and stop waiting when time is up.

Python cannot stop a thread, so the abandoned call keeps running in the background until it
returns; the run moves on as TimedOut. For a hard stop, run the flow on a worker, which ends
the whole process.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from ..exceptions import TaskTimeout


def call_with_timeout(fn: Callable[[], Any], timeout: float, what: str) -> Any:
    outcome: list[tuple[bool, Any]] = []
    finished = threading.Event()
    context = contextvars.copy_context()

    def target() -> None:
        try:
            outcome.append((True, context.run(fn)))
        except BaseException as exc:  # handed to the waiting thread
            outcome.append((False, exc))
        finally:
            finished.set()

    threading.Thread(target=target, name=f"sluice-timeout-{what}", daemon=True).start()
    if not finished.wait(timeout):
        raise TaskTimeout(f"{what} exceeded its timeout of {timeout:g} s")
    ok, value = outcome[0]
    if ok:
        return value
    raise value


async def await_with_timeout(awaitable: Awaitable[Any], timeout: float | None,
                             what: str) -> Any:
    """Await `awaitable`, raising TaskTimeout if `timeout` seconds pass first. A TimeoutError
    the awaited code raises itself is passed through unchanged (it is not our timeout)."""
    if timeout is None:
        return await awaitable
    scope = asyncio.timeout(timeout)
    try:
        async with scope:
            return await awaitable
    except TimeoutError:
        if scope.expired():
            raise TaskTimeout(f"{what} exceeded its timeout of {timeout:g} s") from None
        raise
