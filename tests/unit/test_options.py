"""Decorator options are validated when applied, with a message naming the option and a fix."""

from __future__ import annotations

from datetime import timedelta

import pytest

from sluice import exponential_backoff, flow, task
from sluice.exceptions import ConfigurationError


def _noop():
    return None


@pytest.mark.parametrize(
    ("options", "names"),
    [
        ({"retries": "3"}, ["retries", "retries=3"]),
        ({"retries": 2.5}, ["retries"]),
        ({"retries": True}, ["retries"]),
        ({"retries": -1}, ["retries", "greater than or equal to 0"]),
        ({"retry_jitter_factor": -0.1}, ["retry_jitter_factor", "retry_jitter_factor=0.5"]),
        ({"retries": 1, "retry_delay_seconds": [1, 2]}, ["retry_delay_seconds", "retries=2"]),
        ({"retry_delay_seconds": -5}, ["retry_delay_seconds"]),
        ({"retry_delay_seconds": "soon"}, ["retry_delay_seconds"]),
        ({"on_failure": "alert"}, ["on_failure", "callable"]),
        ({"on_completion": [print, 3]}, ["on_completion", "callable"]),
        ({"timeout_seconds": 0}, ["timeout_seconds"]),
        ({"cache_policy": "everything"}, ["cache_policy", "inputs+source"]),
        ({"cache_expiration": -3}, ["cache_expiration"]),
        ({"result_storage": "ftp://x"}, ["result_storage", "s3://bucket/prefix"]),
        ({"tags": [""]}, ["tags"]),
        ({"retires": 3}, ["retires", "is not an option of @task"]),
        ({"cache_policy": "inputs", "persist_result": False}, ["persist"]),
    ],
)
def test_bad_task_options_are_refused_by_name(options, names):
    # When @task is applied with a bad option, Then the error names it (and a correct example).
    with pytest.raises(ConfigurationError) as info:
        task(**options)(_noop)
    for name in names:
        assert name in str(info.value)


@pytest.mark.parametrize(
    ("options", "names"),
    [
        ({"retries": "2"}, ["retries", "retries=2"]),
        ({"max_workers": 0}, ["max_workers"]),
        ({"timeout_seconds": -1}, ["timeout_seconds"]),
        ({"on_crashed": 42}, ["on_crashed", "callable"]),
        ({"on_cancellation": [None]}, ["on_cancellation"]),
        ({"validate_parameters": "maybe"}, ["validate_parameters"]),
        ({"retry_delay_seconds": [1]}, ["retry_delay_seconds"]),
        ({"name": ""}, ["name"]),
    ],
)
def test_bad_flow_options_are_refused_by_name(options, names):
    with pytest.raises(ConfigurationError) as info:
        flow(**options)(_noop)
    for name in names:
        assert name in str(info.value)


def test_positional_string_is_explained():
    with pytest.raises(ConfigurationError, match=r"@task\(name='load'\)"):
        task("load")
    with pytest.raises(ConfigurationError, match=r"@flow\(name='etl'\)"):
        flow("etl")


def test_bare_and_called_decorators_give_the_same_objects():
    bare = task(_noop)
    called = task()(_noop)
    assert bare.fn is called.fn is _noop
    assert bare.name == called.name == "_noop"
    assert flow(_noop).name == "_noop".replace("_", "-")


def test_good_options_are_kept_and_normalised():
    t = task(retries=3, retry_delay_seconds=[1, 2], tags="etl", on_failure=print,
             cache_expiration=60)(_noop)
    assert t.options.retries == 3
    assert t.options.retry_delay_seconds == [1.0, 2.0]
    assert t.options.tags == ("etl",)
    assert t.options.on_failure == (print,)
    assert t.options.cache_expiration == timedelta(seconds=60)


def test_with_options_returns_a_copy():
    original = task(retries=1, name="load")(_noop)
    changed = original.with_options(retries=4)
    assert changed is not original and changed.fn is original.fn
    assert (original.options.retries, changed.options.retries) == (1, 4)
    assert changed.name == "load"
    with pytest.raises(ConfigurationError, match="retries"):
        original.with_options(retries="many")
    with pytest.raises(ConfigurationError, match="unknown option"):
        original.with_options(retires=2)
    f = flow(name="etl")(_noop)
    assert f.with_options(retries=2).options.retries == 2 and f.options.retries == 0


def test_options_are_frozen():
    t = task(_noop)
    with pytest.raises(Exception):
        t.options.retries = 5  # type: ignore[misc]


def test_exponential_backoff():
    delays = exponential_backoff(2)
    assert [delays(n) for n in (1, 2, 3)] == [2, 4, 8]
    with pytest.raises(ValueError):
        exponential_backoff(-1)


def test_retry_delay_shapes():
    assert task(retries=3, retry_delay_seconds=5)(_noop).options.delay_for(2) == 5
    lst = task(retries=3, retry_delay_seconds=[1, 9])(_noop).options
    assert [lst.delay_for(n) for n in (1, 2, 3)] == [1, 9, 9]
    fn = task(retries=3, retry_delay_seconds=lambda n: n * 10)(_noop).options
    assert fn.delay_for(3) == 30
