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
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..exceptions import TaskWaitsOnItself

if TYPE_CHECKING:
    from ..models import State


_PENDING, _RUNNING, _FINISHED = "PENDING", "RUNNING", "FINISHED"  # concurrent.futures' states
_DONE_STATES = frozenset({_FINISHED, "CANCELLED", "CANCELLED_AND_NOTIFIED"})

#: Jobs one thread runs inline inside each other before it hands the next to a new thread.
MAX_INLINE_DEPTH = 24
_inline = threading.local()
#: The one condition of every job in the process. One, not one per pool: `cf.wait` takes the
#: conditions of the futures it waits on in the order of their ids, and two shared locks taken
#: in that order by two waiting threads could each hold one and wait for the other.
_JOBS_CONDITION = threading.Condition()


class TaskJob(cf.Future):  # type: ignore[type-arg]
    """One submitted task run and its future: started by a pool thread or by its first waiter,
    never both. Its untimed `result()` runs it inline when it has not started yet.

    All jobs share one condition (`_JOBS_CONDITION`) instead of a Condition and RLock each:
    those cost more than a trivial task's own bookkeeping (a map of 10,000 trivial tasks ran
    about a third faster). The shared condition wakes every waiting job's waiters when one job
    ends, so waits here loop until their own job ended; `concurrent.futures.wait` and
    `as_completed` use waiters of their own and are unaffected."""

    def __init__(self, call: Callable[[], State], name: str) -> None:
        # cf.Future.__init__'s fields, with the shared condition.
        self._condition = _JOBS_CONDITION
        self._state = _PENDING
        self._result: Any = None
        self._exception: BaseException | None = None
        self._waiters: list[Any] = []
        self._done_callbacks: list[Any] = []
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

    def done(self) -> bool:
        # One read, no lock: a job's state only moves forward, so a stale answer is "not yet".
        return self._state in _DONE_STATES

    def result(self, timeout: float | None = None) -> Any:
        if self._state == _FINISHED and self._exception is None:
            return self._result  # set before the state under the lock: no lock needed to read
        if self._state != _FINISHED:
            self.help(run_inline=timeout is None)
            self._wait_done(timeout)
        return super().result(0)  # done, or the wait above timed out

    def exception(self, timeout: float | None = None) -> BaseException | None:
        self._wait_done(timeout)
        return super().exception(0)

    def _wait_done(self, timeout: float | None) -> None:
        """Wait until this job ended (or `timeout`): a shared condition also wakes on others."""
        if self._state in _DONE_STATES:
            return
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._condition:
            while self._state not in _DONE_STATES:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return
                self._condition.wait(remaining)

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


#: How often the ramp looks whether queued jobs sit with no pool thread taking one. Jobs that
#: hold the GIL (trivial or CPU-bound tasks) keep one thread taking jobs, and more threads
#: would only fight it for the GIL (a map of 10,000 trivial tasks cost ~33 us a task on one
#: thread, ~48 on six); jobs that wait (I/O, sleep, a lock) stall the queue, and then a thread
#: is added each few looks up to `max_workers`, so waits still overlap within a few ms.
THREAD_RAMP_SECONDS = 0.001
#: Looks in a row that must find no job taken before a thread is added: pool threads that wait
#: on each other's bookkeeping (a job's lock held by a thread the OS has not woken yet) stall
#: the queue for a moment, and a thread more would not help.
RAMP_STALLED_LOOKS = 3
#: The share of an interval the process may spend on the CPU and still count as idle. More
#: means that something held the GIL meanwhile (the reporter serializing a batch, a garbage
#: collection, the flow's own code). If the pool's threads were taking many jobs a look before
#: (short tasks), they are starved of the GIL, not waiting on anything, and a thread more would
#: only fight for the GIL too (a map reporting to a control plane went to six threads this way,
#: and cost a third more a task); such a stall counts only after `RAMP_PATIENCE` looks.
RAMP_BUSY_SHARE = 0.5
#: Stalled looks in a row, the process busy and the threads recently quick to take jobs, after
#: which the pool gets a thread anyway.
RAMP_PATIENCE = 20


class Pool:
    """Threads that run jobs from a queue: a leaner `ThreadPoolExecutor` (a job is its own
    future, so no second future per task run). The first job starts a thread; more start while
    jobs wait in the queue and no thread has taken one for a few looks (`_ramp_step`), up to
    `max_workers` (default: Python's, `min(32, CPUs + 4)`)."""

    def __init__(self, max_workers: int | None, label: str) -> None:
        self.max_workers = max_workers or min(32, (os.cpu_count() or 1) + 4)
        self._label = label
        self._queue: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        #: One token per thread that finished a job and found the queue empty (so it is, or
        #: soon is, waiting for more): a submit takes a token instead of starting a thread.
        #: A SimpleQueue rather than a Semaphore: its put/get are C calls (~0.1 us) where a
        #: Semaphore's cost ~2-4 us.
        self._idle: queue.SimpleQueue[None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        #: Jobs pool threads have taken from the queue: the ramp's sign of progress.
        self._taken = 0
        #: Whether a ramp thread watches the queue (`_ramp`).
        self._ramping = False
        #: The ramp's looks in a row that found no job taken, and the jobs taken a look lately.
        self._stalled = 0
        self._take_rate = 0.0

    def submit(self, work: Callable[[], None]) -> None:
        self.submit_many((work,))

    def submit_many(self, works: Sequence[Callable[[], None]]) -> None:
        """Queue several jobs in one pass (`Task.map`), then start only the threads that the
        idle ones do not cover."""
        put = self._queue.put
        for work in works:
            put(work)
        needed = len(works)
        idle = self._idle
        while needed and idle.qsize():
            try:
                idle.get_nowait()
            except queue.Empty:  # another submitter took the last token
                break
            needed -= 1
        if not needed or len(self._threads) >= self.max_workers:
            return
        with self._lock:
            if not self._threads and self.max_workers:
                self._start_thread()
                needed -= 1
            if needed and not self._ramping and len(self._threads) < self.max_workers:
                self._ramping = True
                threading.Thread(target=self._ramp, daemon=True,
                                 name=f"{self._label}_ramp").start()

    def _start_thread(self) -> None:
        """One more pool thread (the caller holds `_lock`)."""
        thread = threading.Thread(target=self._work, daemon=True,
                                  name=f"{self._label}_{len(self._threads)}")
        thread.start()
        self._threads.append(thread)

    def _ramp(self) -> None:
        """While jobs are queued, a look each `THREAD_RAMP_SECONDS` (`_ramp_step`), noting
        whether the process was busy meanwhile (`RAMP_BUSY_SHARE`)."""
        seen: int | None = None
        clock, cpu = time.monotonic, time.process_time
        while True:
            start, start_cpu = clock(), cpu()
            time.sleep(THREAD_RAMP_SECONDS)
            busy = cpu() - start_cpu > (clock() - start) * RAMP_BUSY_SHARE
            seen = self._ramp_step(seen, busy=busy)
            if seen is None:
                return

    def _ramp_step(self, seen: int | None, *, busy: bool = False) -> int | None:
        """One look at the queue: a thread more once no job was taken for
        `RAMP_STALLED_LOOKS` looks in a row (`RAMP_PATIENCE` if the process was `busy` and
        the threads were taking jobs quickly before, see `RAMP_BUSY_SHARE`); the count to
        compare next time, or None once nothing waits (or no thread may be added)."""
        with self._lock:
            if not self._queue.qsize() or len(self._threads) >= self.max_workers:
                self._ramping = False
                return None
            if seen is not None:  # the first look has nothing to compare with
                taken = max(0, self._taken - seen)
                # Jobs taken a look, lately: many means short tasks, so a stall is starvation.
                self._take_rate = self._take_rate * 0.75 + taken * 0.25
                self._stalled = self._stalled + 1 if taken == 0 else 0
            quick = busy and self._take_rate >= 1
            if self._stalled >= (RAMP_PATIENCE if quick else RAMP_STALLED_LOOKS):
                self._stalled = 0
                self._start_thread()
            return self._taken

    def _work(self) -> None:
        get, idle, queued = self._queue.get, self._idle.put, self._queue.qsize
        while True:
            work = get()
            if work is None:
                return
            self._taken += 1  # approximate across threads: only compared for a change
            work()
            del work
            # A token only when about to wait: one per job done would let a thread that ran a
            # batch stand for as many idle threads, and later submits start no thread at all.
            if not queued():
                idle(None)

    def shutdown(self) -> None:
        """Run what is queued, then stop the threads."""
        # The ramp still adds threads for it (none left alive: a job killed its thread).
        while self._queue.qsize() and any(thread.is_alive() for thread in self._threads):
            time.sleep(THREAD_RAMP_SECONDS)
        with self._lock:
            threads, self._threads = self._threads, []
            self.max_workers = 0  # late submits run nothing new
        for _ in threads:
            self._queue.put(None)
        for thread in threads:
            thread.join()
