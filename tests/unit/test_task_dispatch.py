"""Submitting task runs in bulk (issue 20): the pool's batch submission, the jobs' lock-light
waits, and ids drawn without a system call."""

from __future__ import annotations

import concurrent.futures as cf
import os
import threading

import pytest

from sluice import flow, task
from sluice.engine.jobs import RAMP_PATIENCE, RAMP_STALLED_LOOKS, Pool, TaskJob
from sluice.models import new_id


def test_a_batch_runs_every_job_once_on_no_more_threads_than_allowed():
    # Given a pool of 3 threads and 200 jobs that count their runs
    pool = Pool(3, "test")
    runs: list[int] = []
    lock = threading.Lock()

    def job(i: int) -> None:
        with lock:
            runs.append(i)

    # When they are submitted in one batch and the pool shuts down
    pool.submit_many([lambda i=i: job(i) for i in range(200)])
    started = len(pool._threads)
    pool.shutdown()

    # Then each ran exactly once, on at most 3 threads
    assert sorted(runs) == list(range(200))
    assert 1 <= started <= 3


def test_an_idle_thread_takes_the_next_job_instead_of_a_new_thread():
    # Given a pool whose one thread finished a job
    pool = Pool(4, "test")
    first = threading.Event()
    pool.submit(first.set)
    assert first.wait(5)

    # When more jobs come one at a time, each after the last finished
    for _ in range(5):
        done = threading.Event()
        pool.submit(done.set)
        assert done.wait(5)
    threads = len(pool._threads)
    pool.shutdown()

    # Then the idle thread took them: no thread was started for them
    assert threads == 1


def test_a_timed_wait_on_a_job_running_elsewhere_times_out_and_then_gets_its_value():
    # Given a job that a thread runs until released
    release = threading.Event()
    job = TaskJob(lambda: release.wait(5) and "value", "slow")  # type: ignore[arg-type,return-value]
    runner = threading.Thread(target=job.run)
    runner.start()
    while job._state == "PENDING":
        threading.Event().wait(0.001)

    # When a waiter waits briefly, then the job is released
    with pytest.raises(cf.TimeoutError):
        job.result(timeout=0.01)
    assert not job.done()
    release.set()
    runner.join()

    # Then the value and the (absent) exception are there
    assert job.done()
    assert job.result() == "value"
    assert job.exception() is None


def test_a_failed_job_raises_its_exception_to_every_waiter():
    # Given a job whose call raises
    job = TaskJob(lambda: 1 / 0, "fails")  # type: ignore[arg-type,return-value]

    # When it runs (its first waiter runs it inline)
    with pytest.raises(ZeroDivisionError):
        job.result()

    # Then later waits see the same exception
    assert isinstance(job.exception(), ZeroDivisionError)
    with pytest.raises(ZeroDivisionError):
        job.result(timeout=1)


def test_mapped_runs_that_wait_on_each_other_finish_on_a_one_thread_pool():
    # Given a flow with one pool thread whose mapped runs wait on runs mapped before them
    @task
    def double(x: int) -> int:
        return 2 * x

    @task
    def add(x: int, y: int) -> int:
        return x + y

    @flow(max_workers=1)
    def chain() -> list[int]:
        doubled = double.map(range(20))
        return add.map(doubled, range(20)).result()

    # When it runs, Then every run finishes with its value
    assert chain() == [3 * i for i in range(20)]


def test_an_empty_map_submits_nothing_and_returns_no_futures():
    @task
    def inc(x: int) -> int:
        return x + 1

    @flow
    def empty() -> list[int]:
        return inc.map([]).result()

    assert empty() == []


def test_ids_are_unique_and_a_forked_child_draws_other_ids_than_its_parent():
    # Given many ids from this process
    ids = [new_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 32 for i in ids)
    if not hasattr(os, "fork"):
        pytest.skip("no fork on this platform")

    # When a forked child and its parent each draw ids
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its ids and leave without running pytest's exit code
        os.write(write, "".join(new_id()[14:] for _ in range(50)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 1 << 16).decode()
    os.close(read)
    parent = "".join(new_id()[14:] for _ in range(50))

    # Then their random parts differ (the child was reseeded)
    assert child and child != parent


def test_jobs_that_wait_on_each_other_get_threads_up_to_the_limit():
    # Given a pool of 4 and 4 jobs that can only finish together (each waits at a barrier)
    pool = Pool(4, "test")
    barrier = threading.Barrier(4, timeout=10)
    passed: list[int] = []

    # When they are submitted in one batch
    pool.submit_many([lambda i=i: (barrier.wait(), passed.append(i)) for i in range(4)])
    pool.shutdown()

    # Then the pool added threads while the queue stalled, and all of them got through
    assert sorted(passed) == [0, 1, 2, 3] and not barrier.broken


def test_the_ramp_adds_a_thread_only_when_no_job_was_taken_for_a_few_looks():
    # Given a pool with one busy thread and jobs waiting in its queue
    pool = Pool(3, "test")
    release = threading.Event()
    pool.submit(lambda: release.wait(10))
    for _ in range(5):
        pool._queue.put(lambda: None)
    pool._ramping = True
    threads = len(pool._threads)

    # When the threads took a job since the last look, Then no thread is added
    seen = pool._ramp_step(pool._taken - 1)
    assert len(pool._threads) == threads and seen == pool._taken

    # When none was taken for RAMP_STALLED_LOOKS looks in a row (the process idle), Then one
    # more thread starts (and takes the queued jobs)
    for _ in range(RAMP_STALLED_LOOKS - 1):
        pool._ramp_step(pool._taken)
    assert len(pool._threads) == threads
    pool._ramp_step(pool._taken)
    assert len(pool._threads) == threads + 1

    # When the queue is empty, Then the ramp ends
    release.set()
    pool.shutdown()
    assert pool._ramp_step(pool._taken) is None and not pool._ramping


def test_after_a_batch_on_one_thread_jobs_that_wait_on_each_other_still_get_threads():
    # Given a pool whose one thread ran a batch of 100 trivial jobs (it is one idle thread,
    # not a hundred)
    pool = Pool(4, "test")
    pool.submit_many([lambda: None] * 100)
    ran = threading.Event()
    pool.submit(ran.set)
    assert ran.wait(5)

    # When 4 jobs come that can only finish together
    barrier = threading.Barrier(4, timeout=10)
    passed: list[int] = []
    pool.submit_many([lambda i=i: (barrier.wait(), passed.append(i)) for i in range(4)])
    pool.shutdown()

    # Then the pool added the threads they need
    assert sorted(passed) == [0, 1, 2, 3] and not barrier.broken


def _pool_with_waiting_jobs(release: threading.Event) -> Pool:
    pool = Pool(4, "test")
    pool.submit(lambda: release.wait(10))
    for _ in range(8):
        pool._queue.put(lambda: release.wait(10))
    pool._ramping = True
    return pool


def test_short_tasks_starved_of_the_gil_get_a_thread_only_after_a_long_stall():
    # Given a pool whose thread was taking hundreds of jobs a look (short tasks)
    release = threading.Event()
    pool = _pool_with_waiting_jobs(release)
    for _ in range(3):
        pool._ramp_step(pool._taken - 500, busy=True)
    threads = len(pool._threads)

    # When looks then find no job taken while the process was busy (the GIL held by other
    # code), Then no thread is added for RAMP_PATIENCE - 1 looks, and one is after that
    for _ in range(RAMP_PATIENCE - 1):
        pool._ramp_step(pool._taken, busy=True)
    assert len(pool._threads) == threads
    pool._ramp_step(pool._taken, busy=True)
    assert len(pool._threads) == threads + 1
    release.set()
    pool.shutdown()


def test_slow_tasks_get_threads_soon_even_while_the_process_is_busy():
    # Given a pool whose thread takes a job only now and then (each waits on I/O)
    release = threading.Event()
    pool = _pool_with_waiting_jobs(release)
    for _ in range(4):
        pool._ramp_step(pool._taken - 1, busy=True)
        for _ in range(RAMP_STALLED_LOOKS - 1):
            pool._ramp_step(pool._taken, busy=True)
    threads = len(pool._threads)

    # When RAMP_STALLED_LOOKS looks find none taken while other code keeps the process busy,
    # Then a thread is added
    pool._ramp_step(pool._taken - 1, busy=True)
    for _ in range(RAMP_STALLED_LOOKS):
        pool._ramp_step(pool._taken, busy=True)
    assert len(pool._threads) == threads + 1
    release.set()
    pool.shutdown()


def test_a_map_starts_its_first_runs_while_it_still_prepares_the_rest():
    # Given a map whose preparation stops at its 300th run (its Pending record) until some
    # run of it has started
    from sluice import use_reporter
    from sluice.engine.dispatch import MAP_SUBMIT_CHUNK
    from sluice.models import StateType
    from sluice.reporting import InMemoryReporter

    started = threading.Event()
    waited: list[bool] = []

    class Watching(InMemoryReporter):
        pendings = 0

        def report_task_run(self, task_run):
            super().report_task_run(task_run)
            if task_run.state.type is StateType.PENDING and task_run.task_name == "step":
                self.pendings += 1
                if self.pendings == MAP_SUBMIT_CHUNK + 44:
                    waited.append(started.wait(timeout=10))

    @task
    def step(x: int) -> int:
        started.set()
        return x

    @flow
    def fan_out() -> list[int]:
        return step.map(range(1000)).result()

    # When it runs, Then runs queued in the first batch ran meanwhile (one pass at the end
    # would have left the preparation waiting out its timeout), and every run ran once
    with use_reporter(Watching()):
        assert fan_out() == list(range(1000))
    assert waited == [True]


def test_a_maps_runs_are_named_in_order_whatever_its_first_runs_call():
    # Given a map whose first runs call the task they are runs of (a nested call takes a name)
    @task
    def step(x: int, nested: bool = False) -> int:
        if x < 50 and not nested:
            step(x, nested=True)
        return x

    names: list[str] = []

    @flow
    def fan_out() -> None:
        futures = step.map(range(600))
        futures.result()
        names.extend(future.task_run.name for future in futures)

    # When it runs (its first runs start while the rest are prepared), Then the map's runs
    # took step-0 .. step-599 in order, the nested calls the names after them: a retry of
    # the flow finds each run's persisted result under the same name
    fan_out()
    assert names == [f"step-{x}" for x in range(600)]
