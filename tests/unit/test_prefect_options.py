"""Names and options as Prefect users know them: run names, descriptions, reserved parameters,
log_prints inheritance, on_running and async hooks, tags(), allow_failure/quote, methods,
tasks outside a flow, and async timeouts (issue 14)."""

from __future__ import annotations

import asyncio

import pytest

from sluice import allow_failure, flow, get_run_logger, quote, tags, task
from sluice.exceptions import ConfigurationError, TaskTimeout


# -- flow_run_name / task_run_name -----------------------------------------------------------

def test_flow_run_name_template_over_parameters_with_defaults(reporter):
    # Given a flow whose run name is a template over its parameters (one with a default)
    @flow(flow_run_name="etl-{day}-{region}")
    def etl(day: str, region: str = "eu") -> str:
        return day

    # When it runs, Then the run is named from the parameters
    etl("2024-06-01")
    assert reporter.last_flow_run().name == "etl-2024-06-01-eu"


def test_flow_run_name_callable_with_or_without_parameters(reporter):
    # Given run names from a function taking the parameters, and from one taking nothing
    @flow(flow_run_name=lambda parameters: f"n-{parameters['n']}")
    def with_params(n: int) -> int:
        return n

    @flow(flow_run_name=lambda: "fixed-name")
    def without() -> None:
        return None

    # When they run, Then each run has the name the function gave
    with_params(7)
    assert reporter.last_flow_run().name == "n-7"
    without()
    assert reporter.last_flow_run().name == "fixed-name"


def test_run_name_template_naming_no_parameter_is_refused_at_decoration():
    # When a template names something that is not a parameter, Then decoration fails naming it
    with pytest.raises(ConfigurationError, match="`flow_run_name` refers to dya"):
        @flow(flow_run_name="etl-{dya}")
        def etl(day: str) -> None: ...

    with pytest.raises(ConfigurationError, match="`task_run_name` refers to x"):
        @task(task_run_name="t-{x}")
        def t(y: int) -> None: ...

    with pytest.raises(ConfigurationError, match="task_run_name"):
        task(task_run_name=42)


def test_rendered_run_name_must_be_a_valid_run_name(reporter):
    # Given a template whose value puts a '/' in the run name
    @flow(flow_run_name="etl-{day}")
    def etl(day: str) -> None: ...

    # When it is called, Then the call is refused before any run exists, naming the rule
    with pytest.raises(ConfigurationError, match="flow_run_name.*invalid name.*'/'"):
        etl("2024/06/01")
    assert reporter.flow_runs == {}


def test_task_run_name_template_and_repeated_names_stay_unique(reporter):
    # Given a task named after its argument, called twice with the same value
    @task(task_run_name="load-{table}")
    def load(table: str) -> str:
        return table

    @task(task_run_name=lambda parameters: f"sum-{len(parameters['xs'])}")
    def total(xs: list[int]) -> int:
        return sum(xs)

    @flow
    def pipeline() -> None:
        load("orders")
        load("users")
        load("orders")
        total([1, 2])

    # When the flow runs, Then the task runs carry the rendered names, made unique in the run
    pipeline()
    names = sorted(t.name for t in reporter.task_runs_of(reporter.last_flow_run().id))
    assert names == ["load-orders", "load-orders-1", "load-users", "sum-2"]


# -- descriptions ----------------------------------------------------------------------------

def test_docstring_is_the_default_description_and_documents_parameters():
    # Given a flow documented Google-style and a task documented numpy-style
    @flow
    def etl(day: str, limit: int = 10) -> None:
        """Load one day of orders.

        Args:
            day: The day to load,
                as YYYY-MM-DD.
            limit (int): At most this many rows.
        """

    @flow(description="explicit")
    def other(x: int) -> None:
        """Not this.

        Parameters
        ----------
        x : int
            The x.
        """

    # Then the docstring is the description unless one is given
    assert etl.description.startswith("Load one day of orders.")
    assert other.description == "explicit"
    # And the parameter schema carries the documented descriptions
    props = etl.parameter_schema()["properties"]
    assert props["day"]["description"] == "The day to load, as YYYY-MM-DD."
    assert props["limit"]["description"] == "At most this many rows."
    assert other.parameter_schema()["properties"]["x"]["description"] == "The x."

    @task
    def t() -> None:
        """Task doc."""

    assert t.description == "Task doc."


# -- reserved parameters and names -----------------------------------------------------------

@pytest.mark.parametrize("decorator", [flow, task])
@pytest.mark.parametrize("reserved", ["return_state", "wait_for"])
def test_reserved_parameter_names_are_refused_at_decoration(decorator, reserved):
    namespace: dict = {}
    exec(f"def fn(x, {reserved}=None):\n    return x", namespace)
    # When a function with a reserved parameter name is decorated, Then it is refused with a fix
    with pytest.raises(ConfigurationError, match=f"`{reserved}`.*reserved.*rename it"):
        decorator(namespace["fn"])


@pytest.mark.parametrize("bad", ["a/b", "50%", "this&that", "<tag>", "x>y"])
def test_flow_names_with_special_characters_are_refused(bad):
    with pytest.raises(ConfigurationError, match="flow name"):
        flow(name=bad)


def test_task_of_a_flow_and_flow_of_a_task_are_refused_clearly():
    @flow
    def f() -> None: ...

    @task
    def t() -> None: ...

    with pytest.raises(ConfigurationError, match="a flow cannot be made a task"):
        task(f)
    with pytest.raises(ConfigurationError, match="a task cannot be made a flow"):
        flow(t)
    with pytest.raises(ConfigurationError, match="a flow cannot be made a task"):
        task(retries=1)(f)


# -- log_prints inheritance ------------------------------------------------------------------

def test_log_prints_is_inherited_by_subflows_and_tasks(reporter, capsys):
    # Given a parent with log_prints=True, a subflow and a task that leave it unset (None),
    # and a subflow that turns it off
    @task
    def shout() -> None:
        print("from task")

    @flow
    def child() -> None:
        print("from child")
        shout()

    @flow(log_prints=False)
    def quiet() -> None:
        print("from quiet")

    @flow(log_prints=True)
    def parent() -> None:
        child()
        quiet()

    # When the parent runs
    parent()
    messages = [r.message for r in reporter.logs]
    # Then prints of the subflow and of its task went to the run logs; the opted-out one did not
    assert "from child" in messages and "from task" in messages
    assert "from quiet" not in messages
    assert "from quiet" in capsys.readouterr().out


# -- on_running and async hooks --------------------------------------------------------------

def test_on_running_hooks_run_on_each_attempt_of_flows_and_tasks(reporter):
    seen = []
    attempts = []

    @task(retries=1, on_running=lambda t, run, state: seen.append(("task", state.name)))
    def flaky() -> int:
        attempts.append(1)
        if len(attempts) == 1:
            raise ValueError("once")
        return 1

    @flow(on_running=[lambda f, run, state: seen.append(("flow", state.name))])
    def pipeline() -> int:
        return flaky()

    # When the flow runs, Then on_running fired for the flow and for each task attempt
    assert pipeline() == 1
    assert seen == [("flow", "Running"), ("task", "Running"), ("task", "Retrying")]


def test_async_hooks_and_async_retry_condition_are_awaited(reporter):
    seen = []

    async def on_done(obj, run, state):
        await asyncio.sleep(0)
        seen.append(f"{obj.name}:{state.name}")

    async def retry_value_errors(t, run, state):
        await asyncio.sleep(0)
        return isinstance(state._result, ValueError)

    calls = []

    @task(retries=3, retry_condition_fn=retry_value_errors, on_failure=[on_done])
    def picky() -> None:
        calls.append(1)
        raise (ValueError if len(calls) < 2 else KeyError)("no")

    @task(on_completion=[on_done])
    async def fine() -> int:
        return 1

    @flow(on_completion=[on_done], on_running=[on_done])
    async def pipeline() -> int:
        value = await fine()
        picky(return_state=True)
        return value

    # When the async flow runs, Then every async hook ran to completion
    assert asyncio.run(pipeline()) == 1
    # And the async retry condition was awaited: retried the ValueError, not the KeyError
    assert len(calls) == 2
    assert seen == ["pipeline:Running", "fine:Completed", "picky:Failed", "pipeline:Completed"]


# -- tags(), allow_failure(), quote() --------------------------------------------------------

def test_tags_block_adds_tags_to_runs_created_inside(reporter):
    @task(tags=["own"])
    def t() -> None: ...

    @flow
    def pipeline() -> None:
        with tags("inner"):
            t()

    # When runs are created inside nested tags() blocks
    with tags("etl", "nightly") as in_effect:
        assert in_effect == ("etl", "nightly")
        pipeline()
    run = reporter.last_flow_run()
    [task_run] = reporter.task_runs_of(run.id)
    # Then the flow run and the task run carry the tags in effect where they were created
    assert run.tags == ["etl", "nightly"]
    assert task_run.tags == ["own", "etl", "nightly", "inner"]
    # And outside the block nothing is added
    pipeline()
    assert reporter.last_flow_run().tags == []
    with pytest.raises(ConfigurationError, match="tags\\(\\)"):
        with tags(""):
            pass


def test_allow_failure_passes_the_upstream_exception(reporter):
    @task
    def boom() -> int:
        raise ValueError("upstream broke")

    @task
    def cleanup(previous: object, others: list) -> str:
        return f"{type(previous).__name__}/{len(others)}"

    @flow
    def pipeline() -> str:
        failed = boom.submit()
        return cleanup(allow_failure(failed), allow_failure([failed]))

    # When the downstream task gets the failed future wrapped in allow_failure
    # Then it runs and receives the exception, and the flow (which observed it) completes
    assert pipeline() == "ValueError/1"
    cleanup_run = [t for t in reporter.task_runs_of(reporter.last_flow_run().id)
                   if t.task_name == "cleanup"][0]
    assert cleanup_run.state.is_completed() and cleanup_run.upstream_task_run_ids


def test_quote_passes_the_value_untouched(reporter):
    @task
    def one() -> int:
        return 1

    @task
    def kinds(value: list) -> list[str]:
        return [type(v).__name__ for v in value]

    @flow
    def pipeline() -> list[str]:
        future = one.submit()
        future.wait()
        return kinds(quote([future, 2]))

    # When a list holding a future is quoted, Then the task gets the list as is
    assert pipeline() == ["TaskFuture", "int"]


# -- methods ---------------------------------------------------------------------------------

def test_flows_and_tasks_on_instance_class_and_static_methods(reporter):
    class Pipeline:
        factor = 10

        def __init__(self, offset: int) -> None:
            self.offset = offset

        @task
        def scale(self, x: int) -> int:
            return x * self.factor + self.offset

        @classmethod
        @task
        def by_class(cls, x: int) -> int:
            return x * cls.factor

        @task
        @classmethod
        def by_class_too(cls, x: int) -> int:
            return x + cls.factor

        @staticmethod
        @task
        def plain(x: int) -> int:
            return -x

        @flow
        def run(self, x: int) -> list[int]:
            return [self.scale(x), self.by_class(x), self.by_class_too(x), self.plain(x)]

    p = Pipeline(offset=1)
    # When the bound flow runs, Then self/cls are passed as for methods
    assert p.run(2) == [21, 20, 12, -2]
    assert Pipeline.by_class(1) == 10 and Pipeline.plain(3) == -3
    # And the parameters (and their schema) leave self out; .fn is the plain method
    run = reporter.flow_runs[[r.id for r in reporter.flow_runs.values() if r.flow_name == "run"][0]]
    assert run.parameters == {"x": 2}
    assert list(p.run.parameter_schema()["properties"]) == ["x"]
    assert p.scale.fn(1) == 11
    # And options copies keep binding
    assert p.scale.with_options(retries=1)(1) == 11


# -- tasks outside a flow --------------------------------------------------------------------

def test_task_outside_a_flow_retries_caches_logs_and_reports(reporter, tmp_path):
    calls, completed = [], []

    @task(retries=2, cache_policy="inputs", result_storage=tmp_path,
          on_completion=[lambda t, run, state: completed.append(state.name)])
    def double(x: int) -> int:
        calls.append(x)
        get_run_logger().info("doubling %d", x)
        if len(calls) == 1:
            raise ConnectionError("flaky")
        return 2 * x

    # When the task is called at top level twice with the same input
    assert double(21) == 42
    state = double(21, return_state=True)
    # Then it was retried once, its second call was served from the cache, hooks ran
    assert calls == [21, 21]
    assert state.name == "Cached" and state.result() == 42
    assert completed == ["Completed", "Cached"]
    # And each call was reported as a task run in a lightweight flow run named after the task
    flow_runs = [r for r in reporter.flow_runs.values() if r.flow_name == "double"]
    assert len(flow_runs) == 2 and flow_runs[0].parameters == {"x": 21}
    assert all(r.state.is_completed() for r in flow_runs)
    first = reporter.task_runs_of(flow_runs[0].id)
    assert [t.run_count for t in first] == [2]
    assert "doubling 21" in [r.message for r in reporter.logs_of(flow_runs[0].id)]


def test_task_outside_a_flow_fails_with_its_error_and_times_out(reporter):
    @task(timeout_seconds=0.05)
    def slow() -> None:
        import time

        time.sleep(1)

    # When a top-level task times out, Then it raises TaskTimeout and its flow run failed
    with pytest.raises(TaskTimeout):
        slow()
    state = slow(return_state=True)
    assert state.name == "TimedOut"
    assert reporter.last_flow_run().state.type.value == "FAILED"


def test_async_task_outside_a_flow(reporter):
    @task(retries=1)
    async def fetch(x: int) -> int:
        await asyncio.sleep(0)
        return x + 1

    async def main() -> int:
        return await fetch(1)

    # When awaited at top level (or called with no loop running), Then it runs as a task run
    assert asyncio.run(main()) == 2
    assert fetch(2) == 3
    assert len([t for t in reporter.task_runs.values() if t.task_name == "fetch"]) == 2


# -- async timeouts --------------------------------------------------------------------------

def test_async_flow_raising_timeout_error_without_timeout_fails_with_it(reporter):
    @flow
    async def waits() -> None:
        raise TimeoutError("the upstream API timed out")

    # When the flow raises its own TimeoutError, Then it fails with that error (no TypeError)
    with pytest.raises(TimeoutError, match="upstream API") as info:
        asyncio.run(waits())
    assert not isinstance(info.value, TaskTimeout)
    assert reporter.last_flow_run().state.name == "Failed"


def test_user_timeout_error_is_not_taken_for_the_runs_own_timeout(reporter):
    @task(timeout_seconds=30)
    async def own_error() -> None:
        raise TimeoutError("mine")

    @flow(timeout_seconds=30)
    async def pipeline() -> str:
        state = await own_error(return_state=True)
        return state.name

    @flow(timeout_seconds=0.05)
    async def too_slow() -> None:
        await asyncio.sleep(5)

    # Then a task's own TimeoutError is Failed (not TimedOut) despite its timeout
    assert asyncio.run(pipeline()) == "Failed"
    # And the flow's real timeout is still TimedOut
    state = asyncio.run(too_slow(return_state=True))
    assert state.name == "TimedOut"
