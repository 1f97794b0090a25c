"""Under throttling (429) lease renewals go first, and `run_deployment` polls less and less
often (issue 18.1)."""

from __future__ import annotations

import time
from typing import Any

import httpx

from sluice import deployments
from sluice.client.transport import ThrottleGate, send
from sluice.models import FlowRun, State, StateType


def throttling_api(throttled: int, retry_after: str = "2") -> tuple[httpx.Client, list[str]]:
    """Answers 429 (Retry-After given) to the first `throttled` requests, then 200."""
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if len(seen) <= throttled:
            return httpx.Response(429, json={"error": "throttled", "message": "slow down"},
                                  headers={"retry-after": retry_after})
        return httpx.Response(200, json={})

    return httpx.Client(transport=httpx.MockTransport(handle), base_url="http://api"), seen


def test_a_renewal_retries_a_429_at_once_whatever_the_hint(monkeypatch):
    # Given an API that throttles the first request and asks for 2 s
    http, seen = throttling_api(1)
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    # When a lease renewal is sent
    send(http, "POST", "/heartbeat", json={}, attempts=3, gate=ThrottleGate(), urgent=True)
    # Then it retried after a fraction of a second, not the 2 s hint
    assert seen == ["/heartbeat", "/heartbeat"]
    assert slept and max(slept) <= 0.25


def test_after_a_429_other_calls_wait_and_renewals_do_not(monkeypatch):
    # Given a client whose report batch was just throttled (Retry-After 2 s)
    http, _ = throttling_api(1)
    gate = ThrottleGate()
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)  # time stands still meanwhile
    send(http, "POST", "/events", json={}, attempts=2, gate=gate)  # 429, "waits", then 200
    slept.clear()
    # When a renewal and then another batch are sent right after
    send(http, "POST", "/heartbeat", json={}, gate=gate, urgent=True)
    renewal_waits = list(slept)
    send(http, "POST", "/events", json={}, gate=gate)
    # Then the renewal went at once and the batch waited out the rest of the hint
    assert renewal_waits == []
    assert len(slept) == 1 and 1.0 < slept[0] <= 2.0


class Polled:
    """A client whose run ends after `polls` reads."""

    def __init__(self, polls: int) -> None:
        self.polls = polls
        self.run = FlowRun(id="r1", flow_name="etl", state=State(type=StateType.RUNNING))

    def run_deployment(self, name: str, request: Any) -> FlowRun:
        return self.run

    def get_deployment_run(self, name: str, run_id: str) -> FlowRun:
        self.polls -= 1
        done = StateType.COMPLETED if self.polls <= 0 else StateType.RUNNING
        return self.run.model_copy(update={"state": State(type=done)})


def test_run_deployment_backs_off_from_half_a_second_to_five(monkeypatch):
    # Given a run that ends after 12 polls
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    # When run_deployment waits for it
    final = deployments.run_deployment("etl/n", client=Polled(12))
    # Then it polled first after 0.5 s, then less often, never less often than every 5 s
    assert final.state.type is StateType.COMPLETED
    assert slept[0] == 0.5 and slept == sorted(slept) and max(slept) == 5.0
