"""Issue 13, numbers and decorators: every numeric option is bounded where it enters
(`sluice.models.bounds`): `retries=10**100` and its neighbours are refused by `@flow`/`@task`
with the option and the bound named, and by the API with a 422 that writes nothing. The
decorators also refuse names and tags outside the name rules."""

from __future__ import annotations

from datetime import timedelta

import pytest

from sluice import flow, task
from sluice.exceptions import ConfigurationError

from .names_support import GOOD_DEPLOYMENT, api  # noqa: F401 - the fixture

HUGE = 10**100


@pytest.mark.parametrize(("decorator", "options", "named"), [
    (flow, {"retries": HUGE}, "MAX_RETRIES"),
    (flow, {"retry_delay_seconds": 1e300}, "MAX_RETRY_DELAY_SECONDS"),
    (flow, {"timeout_seconds": float("inf")}, "finite"),
    (flow, {"max_workers": HUGE}, "MAX_FLOW_WORKERS"),
    (task, {"retries": HUGE}, "MAX_RETRIES"),
    (task, {"retries": 3, "retry_delay_seconds": [1, 2, 10**12]}, "MAX_RETRY_DELAY_SECONDS"),
    (task, {"retry_jitter_factor": 1e9}, "MAX_RETRY_JITTER_FACTOR"),
    (task, {"cache_expiration": timedelta(days=10**8)}, "MAX_CACHE_EXPIRATION_SECONDS"),
    (task, {"cache_expiration": 10**15}, "MAX_CACHE_EXPIRATION_SECONDS"),
    (task, {"timeout_seconds": 1e300}, "MAX_TIMEOUT_SECONDS"),
])
def test_a_decorator_refuses_an_unbounded_number(decorator, options, named):
    ran: list[int] = []
    # Given an option far past its bound, When the decorator is applied
    with pytest.raises(ConfigurationError) as refused:
        decorator(**options)(lambda: ran.append(1))
    # Then it names the option and the bound, and nothing ran
    assert named in refused.value.message and "option `" in refused.value.message
    assert ran == []


@pytest.mark.parametrize(("decorator", "options", "shown"), [
    (flow, {"name": "a/b"}, "'/'"),
    (flow, {"name": "etl\x1b[31m"}, "\\x1b"),
    (flow, {"tags": ["ok", "rtl\u202e"]}, "\\u202e"),
    (task, {"name": "load\x00"}, "\\x00"),
    (task, {"tags": ["new\nline"]}, "\\x0a"),
])
def test_a_decorator_refuses_a_bad_name_or_tag(decorator, options, shown):
    with pytest.raises(ConfigurationError) as refused:
        decorator(**options)(lambda: None)
    assert shown in refused.value.message
    assert "\x1b" not in refused.value.message and "\u202e" not in refused.value.message


def test_a_flow_named_after_an_unusable_function_name_asks_for_a_name():
    with pytest.raises(ConfigurationError, match=r"@flow\(name="):
        flow(lambda: None)  # "<lambda>"


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/deployments", {**GOOD_DEPLOYMENT, "retries": HUGE}, "retries"),
    ("/deployments", {**GOOD_DEPLOYMENT, "retry_delay_seconds": 1e300}, "retry_delay_seconds"),
    ("/deployments", {**GOOD_DEPLOYMENT, "concurrency_limit": HUGE}, "concurrency_limit"),
    ("/deployments", {**GOOD_DEPLOYMENT, "max_lateness_seconds": 1e300}, "max_lateness"),
    ("/deployments", {**GOOD_DEPLOYMENT,
                      "schedules": [{"interval_seconds": 1e300}]}, "interval_seconds"),
    ("/flow-runs", {"flow_name": "script", "retries": HUGE}, "retries"),
    ("/pools", {"name": "p", "concurrency_limit": HUGE}, "concurrency_limit"),
    ("/pools/etl/workers", {"name": "w1", "slots": HUGE}, "slots"),
])
def test_the_api_refuses_an_unbounded_number_and_writes_nothing(api, path, body, field):
    # Given the pool etl exists
    api.post("/pools", {"name": "etl"})
    api.writes.clear()
    # When a number far past its bound arrives
    answer = api.post(path, body)
    # Then 422 names the field, and nothing is written
    assert answer.status == 422, answer.json
    assert field in answer.json["message"], answer.json
    assert api.writes == []
