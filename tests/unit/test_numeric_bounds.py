"""Numeric inputs are bounded where they enter (`sluice.models.bounds`): the decorators refuse a
number over its bound, or one that is not finite, naming the option and the bound; the request
models refuse it the same way (the API answers those with 422)."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from sluice import flow, task
from sluice.exceptions import ConfigurationError
from sluice.models import (
    MAX_BACKFILL_RUNS,
    MAX_CONCURRENCY_LIMIT,
    MAX_LATENESS_SECONDS,
    MAX_RETRIES,
    MAX_RETRY_DELAY_SECONDS,
    MAX_TIMEOUT_SECONDS,
    BackfillRequest,
    Deployment,
    DeploymentCreate,
    DeploymentUpdate,
    FlowRun,
    FlowRunCreate,
    PoolCreate,
    Schedule,
)


def _noop():
    return None


@pytest.mark.parametrize("decorator", [flow, task], ids=["flow", "task"])
@pytest.mark.parametrize(
    ("options", "names"),
    [
        ({"retries": MAX_RETRIES + 1}, ["retries", "at most 1000", "MAX_RETRIES"]),
        ({"retry_delay_seconds": MAX_RETRY_DELAY_SECONDS + 1},
         ["retry_delay_seconds", "at most 604800 seconds", "MAX_RETRY_DELAY_SECONDS"]),
        ({"retry_delay_seconds": 1e12}, ["retry_delay_seconds", "7 days"]),
        ({"retry_delay_seconds": math.inf}, ["retry_delay_seconds", "finite"]),
        ({"timeout_seconds": MAX_TIMEOUT_SECONDS + 1},
         ["timeout_seconds", "at most 2592000 seconds", "MAX_TIMEOUT_SECONDS"]),
        ({"timeout_seconds": math.inf}, ["timeout_seconds", "finite"]),
        ({"timeout_seconds": math.nan}, ["timeout_seconds"]),
    ],
)
def test_decorator_options_over_their_bound_are_refused_naming_the_bound(decorator, options,
                                                                         names):
    # When a flow or task is decorated with a number over its bound (or not finite),
    # Then the error names the option and the bound.
    with pytest.raises(ConfigurationError) as info:
        decorator(**options)(_noop)
    for name in names:
        assert name in str(info.value)


def test_task_retry_delay_lists_and_jitter_are_bounded_too():
    with pytest.raises(ConfigurationError, match="retry_delay_seconds.*at most 604800"):
        task(retries=2, retry_delay_seconds=[1, 1e9])(_noop)
    with pytest.raises(ConfigurationError, match="retry_jitter_factor.*at most 10"):
        task(retry_jitter_factor=1e9)(_noop)


def test_options_at_their_bound_are_accepted():
    flow(retries=MAX_RETRIES, retry_delay_seconds=MAX_RETRY_DELAY_SECONDS,
         timeout_seconds=MAX_TIMEOUT_SECONDS)(_noop)
    task(retries=MAX_RETRIES, retry_delay_seconds=[0, MAX_RETRY_DELAY_SECONDS],
         timeout_seconds=MAX_TIMEOUT_SECONDS, retry_jitter_factor=10)(_noop)


@pytest.mark.parametrize(
    ("model", "fields", "field", "limit"),
    [
        (FlowRunCreate, {"flow_name": "etl"}, "retries", MAX_RETRIES),
        (FlowRunCreate, {"flow_name": "etl"}, "retry_delay_seconds", MAX_RETRY_DELAY_SECONDS),
        (DeploymentCreate, {"flow_name": "f", "name": "n", "entrypoint": "f.py:f"}, "retries",
         MAX_RETRIES),
        (DeploymentCreate, {"flow_name": "f", "name": "n", "entrypoint": "f.py:f"},
         "retry_delay_seconds", MAX_RETRY_DELAY_SECONDS),
        (DeploymentCreate, {"flow_name": "f", "name": "n", "entrypoint": "f.py:f"},
         "concurrency_limit", MAX_CONCURRENCY_LIMIT),
        (DeploymentCreate, {"flow_name": "f", "name": "n", "entrypoint": "f.py:f"},
         "max_lateness_seconds", MAX_LATENESS_SECONDS),
        (DeploymentUpdate, {}, "concurrency_limit", MAX_CONCURRENCY_LIMIT),
        (PoolCreate, {"name": "etl"}, "concurrency_limit", MAX_CONCURRENCY_LIMIT),
        (BackfillRequest, {"start": "2024-01-01T00:00:00Z", "end": "2024-01-02T00:00:00Z"},
         "max_active", MAX_BACKFILL_RUNS),
    ],
)
def test_request_models_refuse_numbers_over_their_bound(model, fields, field, limit):
    model(**fields, **{field: limit})  # the bound itself is fine
    with pytest.raises(ValidationError) as info:
        model(**fields, **{field: limit + 1})
    error = info.value.errors()[0]
    assert error["loc"] == (field,) and error["ctx"]["le"] == limit


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_request_models_refuse_numbers_that_are_not_finite(value):
    with pytest.raises(ValidationError):
        FlowRunCreate(flow_name="etl", retry_delay_seconds=value)
    with pytest.raises(ValidationError):
        DeploymentCreate(flow_name="f", name="n", entrypoint="f.py:f", retry_delay_seconds=value)


def test_stored_models_read_values_from_before_the_bounds():
    # Given records stored before the bounds existed (or by hand, with JSON's Infinity/NaN),
    # When they are read, Then they still parse, with non-finite floats made finite, so they
    # can be listed, shown and written back.
    run = FlowRun.model_validate_json(
        '{"id": "r", "flow_name": "etl", "state": {"type": "RUNNING"}, "retries": 100000,'
        ' "retry_delay_seconds": Infinity}')
    assert run.retries == 100000 and math.isfinite(run.retry_delay_seconds)
    assert FlowRun.model_validate_json(run.model_dump_json()) == run
    deployment = Deployment.model_validate_json(
        '{"id": "d", "flow_name": "f", "name": "n", "entrypoint": "f.py:f", "retries": 100000,'
        ' "retry_delay_seconds": 1e12, "concurrency_limit": 1000000,'
        ' "max_lateness_seconds": NaN, "schedules": [{"interval_seconds": Infinity}]}')
    assert deployment.retry_delay_seconds == 1e12 and deployment.max_lateness_seconds == 0
    assert math.isfinite(deployment.schedules[0].interval_seconds)
    assert Schedule(interval_seconds=1e12).interval_seconds == 1e12  # validate_schedule refuses
