"""Submitted task runs that can never deadlock their pool.

A submitted task run is a `TaskJob`: the flow's task runner queues it, and a pool thread runs
it. But whoever waits on its future first while it has not started yet (a task waiting on the
task it submitted, the flow settling its futures) runs it right there, in the waiting thread,
instead of blocking. So tasks that submit tasks that submit tasks finish however small the pool
is: a waiter never holds a pool thread idle while the work it waits for sits in the queue.

A wait that could never end (a task run waiting on its own future, directly or through tasks
it runs inline) raises `TaskWaitsOnItself` at once.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import queue
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..exceptions import TaskWaitsOnItself

if TYPE_CHECKING:
    from ..models import State


_PENDING, _RUNNING, _FINISHED = "PENDING", "RUNNING", "FINISHED"  # concurrent.futures' states

#: Jobs one thread runs inline inside each other before it hands the next to a new thread.
MAX_INLINE_DEPTH = 24
_inline = threading.local()


class TaskJob(cf.Future):  # type: ignore[type-arg]
    """One submitted task run and its future: started by a pool thread or by its first waiter,
    never both. Its untimed `result()` runs it inline when it has not started yet."""

    def __init__(self, call: Callable[[], State], name: str) -> None:
        super().__init__()
        self.name = name
        self._call: Callable[[], State] | None = call
        #: The thread running the job (set while it runs): a wait from there is a self-wait.
        self._thread: int | None = None

    def run(self) -> None:
        """Run the job here unless another thread already started it (or it was cancelled)."""
        with self._condition:  # the claim: PENDING -> RUNNING, once
            if self._state != _PENDING:
                return
            self._state = _RUNNING
        call, self._call = self._call, None
        self._thread = threading.get_ident()
        try:
            state = call()  # type: ignore[misc]
        except BaseException as exc:  # handed to the waiters, as an executor does
            self.set_exception(exc)
        else:
            self.set_result(state)
        finally:
            self._thread = None

    def result(self, timeout: float | None = None) -> Any:
        if self._state != _FINISHED:
            self.help(run_inline=timeout is None)
        return super().result(timeout)

    def help(self, run_inline: bool = True) -> None:
        """Called before waiting on the job: refuse a self-wait, run a queued job inline."""
        if self._thread is not None and self._thread == threading.get_ident():
            raise TaskWaitsOnItself(
                f"task run {self.name!r} waits on its own future, so it could never finish; "
                "return the value instead, or wait on the future from the flow or another task"
            )
        if run_inline and self._state == _PENDING:
            depth = getattr(_inline, "depth", 0)
            if depth >= MAX_INLINE_DEPTH:
                # Deep chains: a thread of its own (outside the pool) keeps the stack bounded.
                threading.Thread(target=self.run, name=f"sluice-{self.name}", daemon=True).start()
                return
            _inline.depth = depth + 1
            try:
                self.run()
            finally:
                _inline.depth = depth


def help_with(inner: cf.Future, run_inline: bool = True) -> None:  # type: ignore[type-arg]
    """Before a `concurrent.futures.wait` on a task future: the same help `result()` gives."""
    if isinstance(inner, TaskJob) and not inner.done():
        inner.help(run_inline)


def wait_all(inners: list[cf.Future], timeout: float | None = None) -> Any:  # type: ignore[type-arg]
    """`concurrent.futures.wait`, after helping each not-started job (runs them inline when
    there is no timeout, so a wait inside a task never starves the pool)."""
    for inner in inners:
        help_with(inner, timeout is None)
    return cf.wait(inners, timeout=timeout)


class Pool:
    """Threads that run jobs from a queue: a leaner `ThreadPoolExecutor` (a job is its own
    future, so no second future per task run). Threads start as work arrives, up to
    `max_workers` (default: Python's, `min(32, CPUs + 4)`)."""

    def __init__(self, max_workers: int | None, label: str) -> None:
        self.max_workers = max_workers or min(32, (os.cpu_count() or 1) + 4)
        self._label = label
        self._queue: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def submit(self, work: Callable[[], None]) -> None:
        self._queue.put(work)
        if self._idle.acquire(timeout=0) or len(self._threads) >= self.max_workers:
            return
        with self._lock:
            if len(self._threads) < self.max_workers:
                thread = threading.Thread(target=self._work, daemon=True,
                                          name=f"{self._label}_{len(self._threads)}")
                thread.start()
                self._threads.append(thread)

    def _work(self) -> None:
        get, idle = self._queue.get, self._idle
        while True:
            work = get()
            if work is None:
                return
            work()
            del work
            idle.release()

    def shutdown(self) -> None:
        """Run what is queued, then stop the threads."""
        with self._lock:
            threads, self._threads = self._threads, []
            self.max_workers = 0  # late submits run nothing new
        for _ in threads:
            self._queue.put(None)
        for thread in threads:
            thread.join()
