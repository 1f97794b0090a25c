"""Task runners (thread pool, process pool, Dask) and submitted tasks that never deadlock."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import pytest

from sluice import flow, get_run_logger, task
from sluice.engine.context import get_flow_run_context
from sluice.engine.futures import as_completed, wait
from sluice.exceptions import ConfigurationError, RemoteTaskError, TaskWaitsOnItself
from sluice.models import StateType
from sluice.task_runners import (
    DaskTaskRunner,
    ProcessPoolTaskRunner,
    TaskRunner,
    ThreadPoolTaskRunner,
)

# -- tasks at module level: process-pool and Dask workers import them by name --------------------


@task
def square(x: int) -> int:
    return x * x


@task
def logs_and_prints(x: int) -> int:
    get_run_logger().info("working on %s", x)
    print(f"printed {x}")
    return x


@task(retries=2)
def flaky(marker: str) -> str:
    """Fails on its first attempt (the marker file survives across processes)."""
    path = Path(marker)
    if not path.exists():
        path.write_text("tried")
        raise ValueError("first attempt fails")
    return f"ok in {os.getpid() != 0}"


class Unpicklable(Exception):
    def __init__(self) -> None:
        super().__init__("has a lock")
        self.lock = threading.Lock()


@task
def raises_unpicklable() -> None:
    raise Unpicklable()


@task
def raises_value_error() -> None:
    raise ValueError("bad input 7")


@task
async def async_double(x: int) -> int:
    await asyncio.sleep(0)
    return 2 * x


@task
def calls_a_task(x: int) -> int:
    return square(x) + 1


@task
def nest(levels: int) -> int:
    if levels == 0:
        return 0
    return nest.submit(levels - 1).result() + 1


# -- options ---------------------------------------------------------------------------------


def noop() -> None:
    pass


def test_a_value_that_is_not_a_runner_is_refused_with_the_fix():
    # When a flow is given something that is not a task runner
    with pytest.raises(ConfigurationError) as caught:
        flow(task_runner=4)(noop)
    # Then the error names the option and shows a correct runner
    message = str(caught.value)
    assert "task_runner" in message and "ThreadPoolTaskRunner(max_workers=8)" in message


def test_a_runner_class_is_started_with_its_defaults():
    # Given a runner class instead of an instance (as Prefect accepts)
    fl = flow(task_runner=ThreadPoolTaskRunner)(noop)
    # Then the flow holds an instance
    assert isinstance(fl.options.task_runner, ThreadPoolTaskRunner)


def test_max_workers_and_a_task_runner_together_are_refused():
    with pytest.raises(ConfigurationError, match="give `max_workers` to the task runner"):
        flow(max_workers=2, task_runner=ThreadPoolTaskRunner())(noop)


@pytest.mark.parametrize("make", [
    lambda: ThreadPoolTaskRunner(max_workers=0),
    lambda: ThreadPoolTaskRunner(max_workers=True),
    lambda: ProcessPoolTaskRunner(max_workers="4"),
    lambda: ThreadPoolTaskRunner(max_workers=10**9),
    lambda: DaskTaskRunner(address="localhost"),
    lambda: DaskTaskRunner(address="tcp://h:8786", cluster_kwargs={"n_workers": 2}),
    lambda: DaskTaskRunner(cluster_kwargs=[("n_workers", 2)]),
    lambda: DaskTaskRunner(cluster_class=3),
])
def test_bad_runner_arguments_are_refused(make):
    with pytest.raises(ConfigurationError, match="must|either|over"):
        make()


def test_with_options_swaps_the_runner_and_keeps_the_original():
    # Given a flow on the default runner
    fl = flow(noop)
    # When a copy gets a process pool
    copy = fl.with_options(task_runner=ProcessPoolTaskRunner(max_workers=2))
    # Then only the copy has it
    assert fl.options.task_runner is None
    assert copy.options.task_runner.max_workers == 2


def test_duplicate_gives_an_unstarted_copy_with_the_same_configuration():
    runner = DaskTaskRunner(cluster_kwargs={"n_workers": 1}, adapt_kwargs={"maximum": 3})
    copy = runner.duplicate()
    assert copy is not runner and copy.client is None
    assert (copy.cluster_kwargs, copy.adapt_kwargs) == ({"n_workers": 1}, {"maximum": 3})
    assert isinstance(copy, TaskRunner)


# -- the thread pool and deadlocks ------------------------------------------------------------


def test_the_default_runner_is_a_thread_pool_sized_by_max_workers(reporter):
    # Given a flow with max_workers (Sluice's shorthand)
    @flow(max_workers=3)
    def fan() -> tuple[str, list[int]]:
        runner = get_flow_run_context().executor
        return repr(runner), [f.result() for f in square.map(range(5))]

    # Then its submitted tasks ran on a ThreadPoolTaskRunner of that size
    assert fan() == ("ThreadPoolTaskRunner(max_workers=3)", [0, 1, 4, 9, 16])


@pytest.mark.parametrize("workers", [1, 2])
def test_tasks_submitting_tasks_forty_levels_deep_finish_on_a_small_pool(reporter, workers):
    # Given a task that submits itself and waits, 40 levels deep, on a pool of 1 or 2 threads
    @flow(task_runner=ThreadPoolTaskRunner(max_workers=workers))
    def deep() -> int:
        return nest.submit(40).result()

    # Then every level finishes
    assert deep() == 40
    assert sum(r.state.type is StateType.COMPLETED for r in reporter.task_runs.values()) == 41


def test_very_deep_chains_do_not_overflow_the_stack(reporter):
    @flow(task_runner=ThreadPoolTaskRunner(max_workers=1))
    def deeper() -> int:
        return nest.submit(200).result()

    assert deeper() == 200


def test_a_fan_out_tree_finishes_with_one_thread(reporter):
    # Given tasks that each submit two children and wait with wait(), as_completed and .result()
    @task
    def tree(depth: int) -> int:
        if depth == 0:
            return 1
        left, right = tree.submit(depth - 1), tree.submit(depth - 1)
        if depth % 3 == 0:
            done, _ = wait([left, right])
            return sum(f.result() for f in done)
        if depth % 3 == 1:
            return sum(f.result() for f in as_completed([left, right]))
        right.wait()
        return left.result() + right.result()

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=1))
    def forest() -> int:
        return tree.submit(6).result()

    # Then all 2**6 leaves are counted
    assert forest() == 64


def test_a_task_waiting_on_its_own_future_fails_at_once(reporter):
    # Given a task that gets hold of its own future and waits on it
    holder: dict[str, object] = {}
    handed = threading.Event()

    @task
    def waits_on_itself() -> int:
        handed.wait(5)
        return holder["future"].result()  # type: ignore[attr-defined]

    @flow
    def selfish() -> None:
        holder["future"] = waits_on_itself.submit()
        handed.set()

    # When the flow runs, Then the task fails with a clear error instead of hanging
    state = selfish(return_state=True)
    assert state.type is StateType.FAILED
    run = next(iter(reporter.task_runs.values()))
    assert run.state.type is StateType.FAILED
    assert "waits on its own future" in run.state.message
    with pytest.raises(TaskWaitsOnItself):
        raise state._result


# -- the process pool -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def process_runner():
    """Spawning processes costs about a second: one pool size for the module's tests."""
    return ProcessPoolTaskRunner(max_workers=2)


def test_process_pool_runs_bodies_elsewhere_and_reports_runs_here(reporter, process_runner,
                                                                  tmp_path):
    # Given a flow on a process pool with mapped tasks, a retry, logs and prints
    @flow(task_runner=process_runner, log_prints=True)
    def on_processes() -> dict[str, object]:
        return {
            "squares": square.map(range(4)).result(),
            "flaky": flaky.submit(str(tmp_path / "marker")).result(),
            "logged": logs_and_prints.submit(7).result(),
            "nested": calls_a_task.submit(3).result(),
            "async": async_double.submit(4).result(),
        }

    # Then values come back
    assert on_processes() == {"squares": [0, 1, 4, 9], "flaky": "ok in True", "logged": 7,
                              "nested": 10, "async": 8}
    runs = {r.name: r for r in reporter.task_runs.values()}
    # And every run is reported, the retried one with two attempts, the nested call too
    assert all(r.state.type is StateType.COMPLETED for r in runs.values())
    assert runs["flaky-0"].run_count == 2
    assert runs["calls_a_task-0.square-0"].parent_task_run_id == runs["calls_a_task-0"].id
    # And the remote log line and print are logs of their task run
    logged = runs["logs_and_prints-0"].id
    messages = {r.message for r in reporter.logs if r.task_run_id == logged}
    assert {"working on 7", "printed 7"} <= messages


def test_process_pool_failures_keep_their_exception(reporter, process_runner):
    @flow(task_runner=process_runner)
    def failing() -> list[object]:
        return [raises_value_error.submit().result(raise_on_failure=False),
                raises_unpicklable.submit().result(raise_on_failure=False)]

    plain, unpicklable = failing()
    # Then a picklable exception comes back as itself, an unpicklable one as RemoteTaskError
    assert isinstance(plain, ValueError) and str(plain) == "bad input 7"
    assert isinstance(unpicklable, RemoteTaskError) and "Unpicklable: has a lock" in str(
        unpicklable)


def test_process_pool_caches_in_the_flow_process(reporter, process_runner, tmp_path):
    cached = square.with_options(cache_policy="inputs", result_storage=tmp_path)

    @flow(task_runner=process_runner)
    def twice() -> list[int]:
        first = cached.submit(5).result()
        return [first, cached.submit(5).result()]

    assert twice() == [25, 25]
    names = sorted(r.state.name for r in reporter.task_runs.values())
    assert names == ["Cached", "Completed"]


def test_a_task_defined_in_a_function_cannot_go_to_a_process_and_says_why(reporter,
                                                                          process_runner):
    @task
    def local(x: int) -> int:
        return x

    @flow(task_runner=process_runner)
    def uses_local() -> object:
        return local.submit(1).result(raise_on_failure=False)

    error = uses_local()
    assert isinstance(error, RemoteTaskError) and "module top level" in str(error)


# -- Dask -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dask_cluster():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=True,
                                       dashboard_address=":0")
    yield cluster
    cluster.close()


def test_dask_runner_at_an_address_runs_tasks_with_retries_logs_and_nested_runs(
        reporter, dask_cluster, tmp_path):
    # Given a flow on an existing cluster, by address
    runner = DaskTaskRunner(address=dask_cluster.scheduler_address)
    started: list[DaskTaskRunner] = []

    @flow(task_runner=runner, log_prints=True)
    def on_dask() -> dict[str, object]:
        started.append(get_flow_run_context().executor)  # type: ignore[arg-type]
        return {
            "squares": square.map(range(5)).result(),
            "flaky": flaky.submit(str(tmp_path / "marker")).result(),
            "logged": logs_and_prints.submit(3).result(),
            "nested": calls_a_task.submit(2).result(),
            "error": raises_value_error.submit().result(raise_on_failure=False),
        }

    result = on_dask()
    # Then values and exceptions come back, and every run is reported here
    assert result["squares"] == [0, 1, 4, 9, 16] and result["logged"] == 3
    assert result["flaky"] == "ok in True" and result["nested"] == 5
    assert isinstance(result["error"], ValueError)
    runs = {r.name: r for r in reporter.task_runs.values()}
    assert runs["flaky-0"].run_count == 2 and runs["flaky-0"].state.is_completed()
    assert runs["calls_a_task-0.square-0"].parent_task_run_id == runs["calls_a_task-0"].id
    logged = runs["logs_and_prints-0"].id
    assert {"working on 3", "printed 3"} <= {r.message for r in reporter.logs
                                             if r.task_run_id == logged}
    # And the run closed its client but left the cluster it did not start running
    assert started[0].client.status == "closed"
    assert dask_cluster.status.name == "running"


def test_dask_runner_without_an_address_starts_and_closes_a_local_cluster(reporter):
    pytest.importorskip("distributed")
    clusters: list[object] = []

    @flow(task_runner=DaskTaskRunner(cluster_kwargs={
        "n_workers": 1, "threads_per_worker": 1, "processes": False, "dashboard_address": ":0"}))
    def local_dask() -> list[int]:
        clusters.append(get_flow_run_context().executor._cluster)  # type: ignore[attr-defined]
        return square.map([1, 2, 3]).result()

    assert local_dask() == [1, 4, 9]
    assert clusters[0].status.name == "closed"  # type: ignore[attr-defined]
