"""Task runners: where a flow's submitted task runs (`.submit()`, `.map()`) execute.

    from sluice import flow
    from sluice.task_runners import DaskTaskRunner

    @flow(task_runner=DaskTaskRunner())           # a LocalCluster for the run
    def fan_out(n: int): ...

    @flow(task_runner=DaskTaskRunner(address="tcp://scheduler:8786"))   # an existing cluster
    def bigger(n: int): ...

`ThreadPoolTaskRunner` (the default) runs them in threads of the flow's process.
`ProcessPoolTaskRunner` and `DaskTaskRunner` run each task's *body* in another process or on a
Dask worker, while its run (states, retries, caching, hooks, reporting) stays in the flow's
process, so task runs are tracked exactly as with threads (see `sluice.engine.remote`).
Calling a task directly (`my_task(x)`) runs it in the caller's thread, whatever the runner.

A flow holds its runner as configuration; each flow run starts its own copy (`duplicate()`)
at its first submit and shuts it down when the run ends.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .exceptions import ConfigurationError
from .models.bounds import MAX_FLOW_WORKERS

if TYPE_CHECKING:
    from .engine.jobs import Pool, TaskJob
    from .engine.remote import Outcome, RemoteCall
    from .engine.task_engine import TaskRunner as TaskCall

__all__ = ["TaskRunner", "ThreadPoolTaskRunner", "ProcessPoolTaskRunner", "DaskTaskRunner"]


def _check_workers(runner: str, max_workers: Any) -> int | None:
    if max_workers is None:
        return None
    if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
        raise ConfigurationError(f"{runner}(max_workers=...) must be a whole number >= 1, got "
                                 f"{max_workers!r}; for example {runner}(max_workers=8)")
    if max_workers > MAX_FLOW_WORKERS:
        raise ConfigurationError(
            f"{runner}(max_workers={max_workers}) is over {MAX_FLOW_WORKERS} "
            "(sluice.models.MAX_FLOW_WORKERS); fan out wider with DaskTaskRunner")
    return max_workers


class TaskRunner:
    """Base of the task runners: a thread pool that runs submitted task runs (jobs). Runners
    whose bodies run elsewhere override `body_for`."""

    #: The threads of a started runner (for remote runners: threads that orchestrate).
    _pool: Pool | None = None

    def duplicate(self) -> TaskRunner:
        """A new, unstarted runner with the same configuration."""
        raise NotImplementedError

    @property
    def name(self) -> str:
        return type(self).__name__

    def start(self, label: str = "sluice") -> TaskRunner:
        """Start the runner's resources (threads, processes, Dask client); returns self."""
        from .engine.jobs import Pool

        self._pool = Pool(self._pool_size(), label)
        return self

    def _pool_size(self) -> int | None:
        return None

    def submit(self, job: TaskJob) -> None:
        """Queue a task run; a pool thread runs it (or its first waiter does, see `jobs`)."""
        if self._pool is None:
            self.start()
        assert self._pool is not None
        self._pool.submit(job.run)

    def submit_many(self, jobs: list[TaskJob]) -> None:
        """Queue several task runs at once (`Task.map`): one pass over the pool's queue."""
        if self._pool is None:
            self.start()
        assert self._pool is not None
        self._pool.submit_many([job.run for job in jobs])

    def body_for(self, call: TaskCall) -> Callable[..., Any] | None:
        """What runs the task's body instead of `task.fn` (None: `task.fn` in the pool thread)."""
        return None

    def shutdown(self) -> None:
        """Wait for queued runs and release the runner's resources."""
        if self._pool is not None:
            self._pool.shutdown()

    def __enter__(self) -> TaskRunner:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        return f"{self.name}()"


class ThreadPoolTaskRunner(TaskRunner):
    """Runs submitted task runs in threads of the flow's process (the default).

    `max_workers` bounds the threads (default: Python's, `min(32, CPUs + 4)`); they start as
    the work needs them (`engine.jobs.Pool`: one more while queued runs wait and none is being
    taken though the process is idle). However small it is, tasks that submit and wait on tasks do not deadlock: a waiter
    runs a task that has not started yet itself."""

    def __init__(self, max_workers: int | None = None) -> None:
        self.max_workers = _check_workers("ThreadPoolTaskRunner", max_workers)

    def duplicate(self) -> ThreadPoolTaskRunner:
        return ThreadPoolTaskRunner(self.max_workers)

    def _pool_size(self) -> int | None:
        return self.max_workers

    def __repr__(self) -> str:
        return f"ThreadPoolTaskRunner(max_workers={self.max_workers!r})"


class ProcessPoolTaskRunner(TaskRunner):
    """Runs the bodies of submitted tasks in worker processes (`max_workers`, default: the
    CPUs), for CPU-bound Python that threads cannot parallelize.

    Processes are spawned (not forked), so task functions must be importable (defined at a
    module's top level), their arguments and results picklable, and a script must call its
    flow under `if __name__ == "__main__":`."""

    def __init__(self, max_workers: int | None = None) -> None:
        self.max_workers = _check_workers("ProcessPoolTaskRunner", max_workers)
        self._processes: cf.ProcessPoolExecutor | None = None

    def duplicate(self) -> ProcessPoolTaskRunner:
        return ProcessPoolTaskRunner(self.max_workers)

    def _pool_size(self) -> int:
        return self.max_workers or os.cpu_count() or 1

    def start(self, label: str = "sluice") -> ProcessPoolTaskRunner:
        import multiprocessing

        self._processes = cf.ProcessPoolExecutor(max_workers=self._pool_size(),
                                                 mp_context=multiprocessing.get_context("spawn"))
        super().start(label)
        return self

    def body_for(self, call: TaskCall) -> Callable[..., Any]:
        from .engine.remote import explain_transport_error, remote_body, run_remote

        processes = self._processes
        assert processes is not None

        def send(remote: RemoteCall) -> Outcome:
            try:
                return processes.submit(run_remote, remote).result()
            except Exception as exc:  # the body's own errors come back inside the outcome
                raise explain_transport_error(exc, call, "a worker process") from exc

        return remote_body(call, send, by_reference=True)

    def shutdown(self) -> None:
        super().shutdown()
        if self._processes is not None:
            self._processes.shutdown(wait=True, cancel_futures=True)

    def __repr__(self) -> str:
        return f"ProcessPoolTaskRunner(max_workers={self.max_workers!r})"


class DaskTaskRunner(TaskRunner):
    """Runs the bodies of submitted tasks on a Dask cluster (`pip install 'sluice-flows[dask]'`).

    With `address` ("tcp://host:8786") it connects to a running scheduler; without, it starts
    `cluster_class(**cluster_kwargs)` (default `distributed.LocalCluster`) for the flow run and
    closes it after. `client_kwargs` go to `distributed.Client`, `adapt_kwargs` (if given) to
    `cluster.adapt()`. Workers need Sluice and the flow's code installed; task runs, retries,
    caching and logs are orchestrated and reported from the flow's process."""

    def __init__(self, address: str | None = None, cluster_class: Any = None,
                 cluster_kwargs: dict[str, Any] | None = None,
                 client_kwargs: dict[str, Any] | None = None,
                 adapt_kwargs: dict[str, Any] | None = None) -> None:
        if address is not None and (not isinstance(address, str) or "://" not in address):
            raise ConfigurationError(
                f"DaskTaskRunner(address=...) must be a scheduler address such as "
                f"'tcp://10.0.0.5:8786', got {address!r}; leave it out to start a LocalCluster")
        if address is not None and (cluster_class is not None or cluster_kwargs):
            raise ConfigurationError(
                "DaskTaskRunner: give either `address` (a running cluster) or `cluster_class`/"
                "`cluster_kwargs` (a cluster started for the run), not both")
        for option, value in (("cluster_kwargs", cluster_kwargs), ("client_kwargs", client_kwargs),
                              ("adapt_kwargs", adapt_kwargs)):
            if value is not None and not isinstance(value, dict):
                raise ConfigurationError(
                    f"DaskTaskRunner({option}=...) must be a dict of keyword arguments, got "
                    f"{value!r}; for example DaskTaskRunner(cluster_kwargs={{'n_workers': 4}})")
        if cluster_class is not None and not (isinstance(cluster_class, str) or
                                              callable(cluster_class)):
            raise ConfigurationError(
                f"DaskTaskRunner(cluster_class=...) must be a class or its import path such as "
                f"'dask_kubernetes.KubeCluster', got {cluster_class!r}")
        self.address = address
        self.cluster_class = cluster_class
        self.cluster_kwargs = dict(cluster_kwargs or {})
        self.client_kwargs = dict(client_kwargs or {})
        self.adapt_kwargs = None if adapt_kwargs is None else dict(adapt_kwargs)
        self._client: Any = None
        self._cluster: Any = None

    def duplicate(self) -> DaskTaskRunner:
        return DaskTaskRunner(self.address, self.cluster_class, self.cluster_kwargs,
                              self.client_kwargs, self.adapt_kwargs)

    @property
    def client(self) -> Any:
        """The started runner's `distributed.Client` (None before `start()`)."""
        return self._client

    def start(self, label: str = "sluice") -> DaskTaskRunner:
        try:
            import distributed
        except ImportError:
            raise ConfigurationError(
                "DaskTaskRunner needs dask.distributed: pip install 'sluice-flows[dask]'"
            ) from None
        if self.address is not None:
            self._client = distributed.Client(self.address, **self.client_kwargs)
        else:
            cluster_class = self.cluster_class or distributed.LocalCluster
            if isinstance(cluster_class, str):
                module, _, attr = cluster_class.rpartition(".")
                from importlib import import_module

                cluster_class = getattr(import_module(module), attr)
            self._cluster = cluster_class(**self.cluster_kwargs)
            try:
                if self.adapt_kwargs is not None:
                    self._cluster.adapt(**self.adapt_kwargs)
                self._client = distributed.Client(self._cluster, **self.client_kwargs)
            except BaseException:
                self._cluster.close()  # a cluster started for the run never outlives it
                raise
        super().start(label)
        return self

    def _pool_size(self) -> int:
        # Orchestrating threads only wait on the cluster: enough to keep every Dask thread busy
        # with one run queued behind it.
        threads = sum(self._client.nthreads().values()) if self._client is not None else 0
        return min(MAX_FLOW_WORKERS, max(8, 2 * threads))

    def body_for(self, call: TaskCall) -> Callable[..., Any]:
        from .engine.remote import explain_transport_error, remote_body, run_remote

        client = self._client

        def send(remote: RemoteCall) -> Outcome:
            key = f"{remote.task_run.name}-{os.urandom(4).hex()}"
            try:
                return client.submit(run_remote, remote, key=key, pure=False).result()
            except Exception as exc:
                raise explain_transport_error(exc, call, "the Dask cluster") from exc

        return remote_body(call, send, by_reference=False)

    def shutdown(self) -> None:
        super().shutdown()
        if self._client is not None:
            self._client.close()
        if self._cluster is not None:
            self._cluster.close()

    def __repr__(self) -> str:
        where = f"address={self.address!r}" if self.address else "LocalCluster"
        return f"DaskTaskRunner({where})"


def as_task_runner(value: Any) -> TaskRunner | None:
    """The `task_runner` option of `@flow`: a runner, or a runner class (started with its
    defaults, as Prefect allows `task_runner=DaskTaskRunner`)."""
    if value is None or isinstance(value, TaskRunner):
        return value
    if isinstance(value, type) and issubclass(value, TaskRunner) and value is not TaskRunner:
        return value()
    raise ValueError(
        "must be a task runner from sluice.task_runners, such as ThreadPoolTaskRunner("
        "max_workers=8), ProcessPoolTaskRunner() or DaskTaskRunner(address='tcp://...')")
