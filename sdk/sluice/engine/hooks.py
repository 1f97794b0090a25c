"""Calling user callbacks (state hooks, `retry_condition_fn`) that may be sync or async.

An async callback is awaited to completion before the run moves on: directly when no event
loop runs in this thread, else on a short-lived loop in a helper thread (the engine's state
changes are synchronous, so the callback cannot be scheduled on the caller's loop).
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import threading
from collections.abc import Callable, Iterable
from typing import Any


def call_maybe_async(fn: Callable[..., Any], *args: Any) -> Any:
    """`fn(*args)`, awaiting the result when it is awaitable."""
    result = fn(*args)
    if inspect.isawaitable(result):
        return run_awaitable(result)
    return result


async def _await(awaitable: Any) -> Any:
    return await awaitable


def run_awaitable(awaitable: Any) -> Any:
    """Run `awaitable` to completion from sync code, inside or outside an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_await(awaitable))
    outcome: list[tuple[bool, Any]] = []
    context = contextvars.copy_context()

    def target() -> None:
        try:
            outcome.append((True, context.run(asyncio.run, _await(awaitable))))
        except BaseException as exc:  # handed back to the calling thread
            outcome.append((False, exc))

    helper = threading.Thread(target=target, name="sluice-async-hook", daemon=True)
    helper.start()
    helper.join()
    ok, value = outcome[0]
    if ok:
        return value
    raise value


def run_hooks(hooks: Iterable[Callable[..., Any]], subject: Any, run: Any, state: Any,
              logger: Callable[[], Any]) -> None:
    """Call each hook with (flow_or_task, run, state); a hook that raises is logged, and the
    others still run."""
    for hook in hooks:
        try:
            call_maybe_async(hook, subject, run, state)
        except Exception:
            logger().exception("hook %s raised", getattr(hook, "__name__", hook))
