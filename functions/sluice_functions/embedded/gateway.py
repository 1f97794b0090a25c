"""A small stand-in for API Gateway's HTTP API: an HTTP request becomes a payload-v2 event for
the same `api` handler Lambda runs, and the handler's answer becomes the HTTP response."""

from __future__ import annotations

import base64
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote


@dataclass
class LambdaContext:
    """What Powertools reads from a Lambda context."""

    function_name: str = "sluice-api-embedded"
    function_version: str = "$LATEST"
    invoked_function_arn: str = "arn:aws:lambda:local:000000000000:function:sluice-api-embedded"
    memory_limit_in_mb: int = 1024
    aws_request_id: str = ""
    log_group_name: str = "embedded"
    log_stream_name: str = "embedded"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def to_event(method: str, target: str, headers: dict[str, str], body: bytes,
             source_ip: str, caller: str | None = None) -> dict[str, Any]:
    """The API Gateway HTTP API (payload 2.0) event of one request."""
    # The target is origin-form ("/path?query"): split it by hand, as urlsplit() raises on
    # some of what a client may send (`//[`) and reads `//host/path` as a host.
    raw_path, _, raw_query = target.split("#", 1)[0].partition("?")
    path = unquote(raw_path)  # API Gateway hands Lambda the decoded path
    query = parse_qsl(raw_query, keep_blank_values=True)
    params: dict[str, str] = {}
    for key, value in query:  # API Gateway joins repeated parameters with commas
        params[key] = f"{params[key]},{value}" if key in params else value
    lowered = {k.lower(): v for k, v in headers.items()}
    now = time.time()
    try:
        text, is_base64 = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, is_base64 = base64.b64encode(body).decode(), True
    request_context: dict[str, Any] = {
        "accountId": "local", "apiId": "embedded", "domainName": lowered.get("host", "local"),
        "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                 "sourceIp": source_ip, "userAgent": lowered.get("user-agent", "")},
        "requestId": uuid.uuid4().hex, "routeKey": "$default", "stage": "$default",
        "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
        "timeEpoch": int(now * 1000),
    }
    if caller:
        request_context["authorizer"] = {"iam": {"userArn": caller}}
    return {
        "version": "2.0", "routeKey": "$default", "rawPath": path,
        "rawQueryString": raw_query, "headers": lowered,
        "queryStringParameters": params or None, "requestContext": request_context,
        "body": text if body else None, "isBase64Encoded": is_base64,
    }


def from_response(response: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body bytes of a handler's payload-v2 response."""
    body = response.get("body") or ""
    data = base64.b64decode(body) if response.get("isBase64Encoded") else body.encode()
    headers = {k: str(v) for k, v in (response.get("headers") or {}).items()}
    for key, values in (response.get("multiValueHeaders") or {}).items():
        headers[key] = ",".join(map(str, values))
    return int(response.get("statusCode", 200)), headers, data
