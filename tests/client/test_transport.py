"""The client's transport: retries with backoff on connection errors, 429 and 5xx; errors
arrive as the SDK's own exception types."""

from __future__ import annotations

import httpx
import pytest

from sluice import exceptions as errors
from sluice.client import SluiceClient
from sluice.client.transport import Unreachable
from sluice.profiles import Connection


def client_with(handler) -> SluiceClient:
    http = httpx.Client(base_url="http://control-plane", transport=httpx.MockTransport(handler))
    return SluiceClient(Connection(api_url="http://control-plane"), http=http, attempts=3)


def test_retries_throttling_then_succeeds(monkeypatch):
    monkeypatch.setattr("sluice.client.transport.time.sleep", lambda s: None)
    answers = iter([
        httpx.Response(429, json={"error": "throttled", "message": "slow down"},
                       headers={"retry-after": "0"}),
        httpx.Response(503, json={"error": "service_unavailable", "message": "busy"}),
        httpx.Response(200, json={"status": "ok", "version": "x"}),
    ])
    seen = []

    def handler(request):
        seen.append(request.url.path)
        return next(answers)

    assert client_with(handler)._call("GET", "/health")["status"] == "ok"
    assert len(seen) == 3


@pytest.mark.parametrize(("status", "code", "kind"), [
    (404, "not_found", errors.NotFound),
    (409, "stale_lease", errors.StaleLease),
    (413, "payload_too_large", errors.PayloadTooLarge),
    (422, "validation_error", errors.ValidationError),
])
def test_client_errors_map_to_sdk_types_without_retry(status, code, kind):
    calls = []

    def handler(request):
        calls.append(1)
        return httpx.Response(status, json={"error": code, "message": "no", "details": {"f": 1}})

    with pytest.raises(kind) as info:
        client_with(handler).get_flow_run("x")
    assert len(calls) == 1 and info.value.details == {"f": 1} and "HTTP" in str(info.value)


def test_connection_errors_end_in_unreachable(monkeypatch):
    monkeypatch.setattr("sluice.client.transport.time.sleep", lambda s: None)
    calls = []

    def handler(request):
        calls.append(1)
        raise httpx.ConnectError("refused")

    with pytest.raises(Unreachable, match="unreachable"):
        client_with(handler).get_flow_run("x")
    assert len(calls) == 3
