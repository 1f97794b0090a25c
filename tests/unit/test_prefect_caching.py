"""Caching you can trust (issue 14): inputs hashed by value, defaults in keys, composable cache
policies as in Prefect 3, refresh_cache, and persisted subflow results reused on parent retry."""

from __future__ import annotations

import dataclasses
import inspect
import subprocess
import sys
import threading

import pytest
from pydantic import BaseModel

from sluice import flow, task
from sluice.cache_policies import (
    DEFAULT,
    FLOW_PARAMETERS,
    INPUTS,
    NO_CACHE,
    NONE,
    RUN_ID,
    TASK_SOURCE,
    CachePolicy,
    CompoundCachePolicy,
    Inputs,
)
from sluice.engine.hashing import stable_hash
from sluice.exceptions import ConfigurationError, HashError


def _counting(fn=None):
    calls = []

    def wrapped(*args, **kwargs):
        calls.append((args, kwargs))
        return fn(*args, **kwargs) if fn else len(calls)

    if fn is not None:
        wrapped.__signature__ = inspect.signature(fn)  # the task binds fn's parameters
    return wrapped, calls


# -- hashing by value -----------------------------------------------------------------------------

class Point(BaseModel):
    x: int
    y: int


@dataclasses.dataclass
class Box:
    width: int
    tags: set


class Plain:
    def __init__(self, value):
        self.value = value


def test_equal_values_hash_equal_whatever_their_order_or_identity():
    # Given values equal by value but built differently (order, identity, copies)
    pairs = [
        ({"a": 1, "b": [1, 2]}, {"b": [1, 2], "a": 1}),
        ({"x", "y", "z"}, {"z", "y", "x"}),
        (Point(x=1, y=2), Point(y=2, x=1)),
        (Box(3, {"a", "b"}), Box(3, {"b", "a"})),
        (Plain([1, 2]), Plain([1, 2])),
        (lambda v: v + 1, lambda v: v + 1),
    ]
    # Then each pair hashes the same
    for left, right in pairs:
        assert stable_hash(left) == stable_hash(right), (left, right)


def test_different_values_hash_differently():
    # Given values that differ (in value, in type, or only in how they are split)
    distinct = [1, 1.0, True, "1", b"1", [1], (1,), {1}, ["a,b"], ["a", "b"], {"a": None},
                {"a": 0}, Point(x=1, y=2), Point(x=2, y=1), Box(1, set()), Plain(1), Plain(2),
                None, (lambda v: v + 1), (lambda v: v + 2)]
    # Then no two share a hash
    hashes = [stable_hash(v) for v in distinct]
    assert len(set(hashes)) == len(distinct)


def test_closures_hash_by_the_values_they_capture():
    def make(n):
        return lambda v: v + n

    assert stable_hash(make(1)) == stable_hash(make(1))
    assert stable_hash(make(1)) != stable_hash(make(2))


def test_cycles_hash_without_recursing_forever():
    a: list = [1]
    a.append(a)
    b: list = [1]
    b.append(b)
    assert stable_hash(a) == stable_hash(b)


def test_a_value_with_no_value_form_is_refused_with_where_it_sits():
    # Given an input holding a lock (whose repr would only show an address)
    holder = Plain(threading.Lock())
    # When it is hashed, Then HashError names the attribute and the way out
    with pytest.raises(HashError) as caught:
        stable_hash({"conn": holder}, "inputs")
    message = str(caught.value)
    assert "inputs['conn'].value" in message and "lock" in message
    assert "INPUTS - " in message and "cache_key_fn" in message


def test_an_open_file_is_refused_not_hashed_by_its_attributes(tmp_path):
    (tmp_path / "a").write_text("a")
    with open(tmp_path / "a") as handle, pytest.raises(HashError):
        stable_hash(handle)


def test_hashes_are_the_same_in_another_process():
    # Given a set of strings (whose iteration order changes with PYTHONHASHSEED)
    code = ("from sluice.engine.hashing import stable_hash;"
            "print(stable_hash({'k': {'alpha', 'beta', 'gamma', 'delta'}}))")
    # When two processes with different hash seeds hash it, Then they agree with this one
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True, env={"PYTHONHASHSEED": seed}).stdout.strip()
            for seed in ("1", "2")}
    assert outs == {stable_hash({"k": {"alpha", "beta", "gamma", "delta"}})}


# -- inputs by value in a flow --------------------------------------------------------------------

class Unpicklable:
    """Same repr for every instance (as a reused address would give), state in a lock."""

    def __init__(self, value):
        self.value = value
        self.lock = threading.Lock()

    def __repr__(self):
        return "<Unpicklable>"


def test_inputs_that_cannot_be_hashed_never_share_a_cached_value(reporter):
    # Given a cached task and two different inputs that look alike and cannot be pickled
    work = task(cache_policy="inputs")(lambda item: item.value)

    @flow
    def pipeline(values: list):
        return [work(Unpicklable(v)) for v in values]

    # When both are computed, Then each gets its own value (no cache, a warning says why)
    assert pipeline([1, 2]) == [1, 2]
    warnings = [r.message for r in reporter.logs if "without the cache" in r.message]
    assert warnings and "cannot hash" in warnings[0]


def test_equal_objects_hit_and_different_ones_miss(reporter):
    fn, calls = _counting(lambda p: p.x + p.y)
    work = task(cache_policy=INPUTS)(fn)

    @flow
    def pipeline():
        return [work(Point(x=1, y=2)), work(Point(y=2, x=1)), work(Point(x=2, y=2))]

    assert pipeline() == [3, 3, 4]
    assert len(calls) == 2


# -- defaults -------------------------------------------------------------------------------------

def test_defaults_are_part_of_the_key_and_of_what_cache_key_fn_sees(reporter):
    seen = []

    def key_fn(context, parameters):
        seen.append(dict(parameters))
        return None

    def scale(x, factor=2):
        return x * factor

    keyed = task(cache_key_fn=key_fn)(scale)
    fn, calls = _counting(scale)
    cached = task(cache_policy=INPUTS)(fn)

    @flow
    def pipeline():
        keyed(1)
        # Given the same call spelled with and without its default
        return [cached(1), cached(1, 2), cached(1, factor=2), cached(1, 3)]

    # Then cache_key_fn sees the default, and the spellings share one key
    assert pipeline() == [2, 2, 2, 3]
    assert seen == [{"x": 1, "factor": 2}]
    assert len(calls) == 2


# -- composable policies --------------------------------------------------------------------------

def test_policies_compose_as_in_prefect():
    # + merges (NONE adds nothing); - excludes an input; a policy without inputs ignores -
    assert NONE + INPUTS == INPUTS and INPUTS + NONE == INPUTS and NO_CACHE == NONE
    both = INPUTS + TASK_SOURCE
    assert isinstance(both, CompoundCachePolicy)
    assert (both - "x").policies == (TASK_SOURCE, Inputs(exclude=("x",)))
    assert INPUTS - "a" - "b" == Inputs(exclude=("a", "b"))
    assert TASK_SOURCE - "x" == TASK_SOURCE
    assert set(DEFAULT.policies) == {TASK_SOURCE, RUN_ID, INPUTS}
    with pytest.raises(TypeError, match="INPUTS - 'verbose'"):
        INPUTS - 3  # noqa: B018


def test_excluded_inputs_do_not_change_the_key(reporter):
    fn, calls = _counting(lambda x, verbose: x)
    work = task(cache_policy=INPUTS - "verbose")(fn)

    @flow
    def pipeline():
        return [work(1, verbose=True), work(1, verbose=False), work(2, verbose=True)]

    assert pipeline() == [1, 1, 2]
    assert len(calls) == 2


def test_inputs_plus_task_source_keys_on_the_code_too(reporter):
    def v1(x):
        return 1

    def v2(x):
        return 2

    v2.__qualname__ = v1.__qualname__  # same task identity, different source
    v2.__module__ = v1.__module__

    @flow
    def pipeline():
        return (task(cache_policy=INPUTS + TASK_SOURCE)(v1)(0),
                task(cache_policy=INPUTS + TASK_SOURCE)(v2)(0),
                task(cache_policy=INPUTS)(v1)(0),
                task(cache_policy=INPUTS)(v2)(0))

    # Then changed code misses with TASK_SOURCE, and hits on inputs alone
    assert pipeline() == (1, 2, 1, 1)


def test_flow_parameters_key_on_the_run_parameters(reporter):
    fn, calls = _counting()
    work = task(cache_policy=FLOW_PARAMETERS)(fn)

    @flow
    def pipeline(day: str):
        return work(), work()

    # Given the same parameters, Then the task runs once across runs; new parameters rerun it
    assert pipeline("mon") == (1, 1) and pipeline("mon") == (1, 1)
    assert pipeline("tue") == (2, 2)


def test_run_id_caches_within_one_run_only(reporter):
    fn, calls = _counting()
    work = task(cache_policy=RUN_ID)(fn)

    @flow
    def pipeline():
        return work(), work()

    assert pipeline() == (1, 1)
    assert pipeline() == (2, 2)


def test_none_never_caches_and_default_caches_per_run(reporter):
    fn, calls = _counting(lambda x: x)
    never = task(cache_policy=NONE)(fn)
    default = task(cache_policy=DEFAULT)(fn)

    @flow
    def pipeline():
        return [never(1), never(1), default(1), default(1)]

    pipeline()
    assert len(calls) == 3
    assert never.options.cache_policy == "none"


def test_inputs_policy_on_a_task_without_inputs_does_not_cache_like_prefect(reporter):
    calls = []

    def fetch():
        calls.append(1)
        return len(calls)

    policy = task(cache_policy=INPUTS)(fetch)
    legacy = task(cache_policy="inputs")(fetch)

    @flow
    def pipeline():
        return [policy(), policy(), legacy(), legacy()]

    # Then INPUTS gives no key (Prefect), while the legacy string caches the call once
    assert pipeline() == [1, 2, 3, 3]


def test_a_custom_policy_and_with_options(reporter):
    @dataclasses.dataclass(frozen=True)
    class ByParity(CachePolicy):
        def compute_key(self, task_ctx, inputs, flow_parameters, **kwargs):
            return str(inputs["x"] % 2)

    fn, calls = _counting(lambda x: x)
    work = task(fn).with_options(cache_policy=ByParity())

    @flow
    def pipeline():
        return [work(1), work(3), work(2)]

    assert pipeline() == [1, 1, 2]


def test_a_bad_policy_is_refused_naming_the_choices():
    with pytest.raises(ConfigurationError) as caught:
        task(cache_policy=object())(lambda: 1)
    assert "cache_policy" in str(caught.value) and "INPUTS + TASK_SOURCE" in str(caught.value)
    with pytest.raises(ConfigurationError, match="persist"):
        task(cache_policy=INPUTS, persist_result=False)(lambda: 1)
    assert task(cache_policy=NONE, persist_result=False)(lambda: 1).options.persist_result is False


def test_a_key_fn_that_raises_runs_the_task_uncached(reporter):
    def broken(context, parameters):
        raise KeyError("nope")

    work = task(cache_key_fn=broken)(lambda: 7)

    @flow
    def pipeline():
        return work()

    assert pipeline() == 7
    assert any("without the cache" in r.message and "KeyError" in r.message
               for r in reporter.logs)


# -- refresh_cache --------------------------------------------------------------------------------

def test_refresh_cache_runs_and_overwrites_the_cached_value(reporter):
    fn, calls = _counting()
    cached = task(cache_policy="inputs+source")(fn)
    refresh = cached.with_options(refresh_cache=True)

    @flow
    def pipeline():
        return [cached(), cached(), refresh(), cached()]

    # Then the refreshing call runs, and later calls read its value
    assert pipeline() == [1, 1, 2, 2]
    names = [t.state.name for t in sorted(reporter.task_runs.values(), key=lambda t: t.name)]
    assert names.count("Cached") == 2


def test_refresh_cache_setting_applies_to_every_task_unless_it_says_otherwise(
        reporter, monkeypatch):
    from sluice.settings import get_settings

    fn, calls = _counting()
    cached = task(cache_policy="inputs")(fn)
    pinned = cached.with_options(refresh_cache=False)

    @flow
    def pipeline():
        return [cached(), pinned()]

    assert pipeline() == [1, 1]
    monkeypatch.setenv("SLUICE_TASKS_REFRESH_CACHE", "true")
    get_settings.cache_clear()
    assert pipeline() == [2, 2]


# -- subflows across parent retries ---------------------------------------------------------------

def test_a_persisted_subflow_is_not_rerun_when_its_parent_retries(reporter):
    child_runs, parent_runs = [], []

    @flow(persist_result=True)
    def child(x: int) -> dict:
        child_runs.append(x)
        return {"rows": x * 10}

    @flow
    def plain_child(x: int) -> int:
        child_runs.append(-x)
        return x

    @flow(retries=1)
    def parent(x: int):
        parent_runs.append(x)
        first = child(x)
        second = plain_child(x)
        if len(parent_runs) == 1:
            raise RuntimeError("load failed")
        return first, second

    # Given a parent whose first attempt failed after its subflows completed
    # When it retries, Then the persisted subflow's value is reused, the other runs again
    assert parent(4) == ({"rows": 40}, 4)
    assert child_runs == [4, -4, -4]
    child_run_states = [r.state.name for r in reporter.flow_runs.values()
                        if r.flow_name == "child"]
    assert child_run_states == ["Completed"]


def test_subflows_persist_by_the_parents_option_and_are_told_apart_by_call(reporter):
    calls, attempts = [], []

    @flow
    def child(x: int) -> int:
        calls.append(x)
        return x

    @flow(retries=1, persist_result=True)
    def parent():
        attempts.append(1)
        values = [child(1), child(2)]
        if len(attempts) == 1:
            raise RuntimeError("first attempt fails")
        return values

    assert parent() == [1, 2]
    assert calls == [1, 2]


def test_a_subflow_that_failed_runs_again_on_retry(reporter):
    attempts = []

    @flow(persist_result=True)
    def child() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("boom")
        return "ok"

    @flow(retries=1)
    def parent():
        return child()

    assert parent() == "ok"
    assert len(attempts) == 2


def test_subflow_calls_are_matched_by_parameters_too(reporter):
    # Given an attempt that calls a persisted subflow with other parameters than the retry
    calls, attempts = [], []

    @flow(persist_result=True)
    def child(x: int) -> int:
        calls.append(x)
        return x * 10

    @flow(retries=1)
    def parent():
        attempts.append(1)
        value = child(len(attempts))  # 1 on the first attempt, 2 on the retry
        if len(attempts) == 1:
            raise RuntimeError("first attempt fails")
        return value

    # Then the retry's call does not get the first attempt's value
    assert parent() == 20
    assert calls == [1, 2]


def test_an_async_parent_reuses_its_persisted_subflow(reporter):
    import asyncio

    calls, attempts = [], []

    @flow(persist_result=True)
    async def child() -> str:
        calls.append(1)
        return "done"

    @flow(retries=1)
    async def parent():
        attempts.append(1)
        value = await child()
        if len(attempts) == 1:
            raise RuntimeError("first attempt fails")
        return value

    assert asyncio.run(parent()) == "done"
    assert calls == [1]
