"""API Gateway HTTP API (payload format 2.0) events for driving `app.resolve` in tests, and a
small reader of the answers."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

#: The identity API Gateway's IAM authorizer puts on signed requests in these tests.
TEST_USER_ARN = "arn:aws:iam::123456789012:user/alice"


@dataclass
class LambdaContext:
    """The attributes Powertools reads from a Lambda context."""

    function_name: str = "sluice-api-test"
    function_version: str = "$LATEST"
    invoked_function_arn: str = "arn:aws:lambda:eu-west-1:123456789012:function:sluice-api-test"
    memory_limit_in_mb: int = 512
    aws_request_id: str = "test-request"
    log_group_name: str = "/aws/lambda/sluice-api-test"
    log_stream_name: str = "test"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def http_event(
    method: str,
    path: str,
    *,
    query: dict[str, str | list[str]] | None = None,
    headers: dict[str, str] | None = None,
    body: Any = None,
    base64_body: bool = False,
    user_arn: str | None = None,
) -> dict[str, Any]:
    """The v2 event API Gateway sends for one request.

    `body` may be a str or bytes (sent as is) or any other value (sent as JSON). Repeated query
    parameters are joined with commas in `queryStringParameters`, as API Gateway does. With
    `user_arn` the request carries an IAM authorizer identity; without it, none (local).
    """
    query = query or {}
    pairs = [(k, v) for k, values in query.items()
             for v in (values if isinstance(values, list) else [values])]
    joined = {k: ",".join(values) if isinstance(values, list) else values
              for k, values in query.items()}
    all_headers = {k.lower(): v for k, v in (headers or {}).items()}
    text: str | None
    if body is None:
        text = None
    elif isinstance(body, bytes):
        text = base64.b64encode(body).decode() if base64_body else body.decode("utf-8")
    elif isinstance(body, str):
        text = base64.b64encode(body.encode()).decode() if base64_body else body
    else:
        text = json.dumps(body)
        all_headers.setdefault("content-type", "application/json")
    request_context: dict[str, Any] = {
        "accountId": "123456789012", "apiId": "api", "domainName": "api.example.com",
        "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                 "sourceIp": "192.0.2.1", "userAgent": "tests"},
        "requestId": uuid.uuid4().hex, "routeKey": "$default", "stage": "$default",
        "time": "01/May/2024:12:00:00 +0000", "timeEpoch": 1714564800000,
    }
    if user_arn:
        request_context["authorizer"] = {"iam": {"userArn": user_arn, "accountId": "123456789012"}}
    return {
        "version": "2.0", "routeKey": "$default", "rawPath": path,
        "rawQueryString": urlencode(pairs), "headers": all_headers,
        "queryStringParameters": joined or None, "requestContext": request_context,
        "body": text, "isBase64Encoded": base64_body and text is not None,
    }


@dataclass
class Answer:
    """A handler's answer, decoded."""

    status: int
    headers: dict[str, str]
    json: Any

    @property
    def error(self) -> str | None:
        return self.json.get("error") if isinstance(self.json, dict) else None


def read_answer(response: dict[str, Any]) -> Answer:
    body = response.get("body") or ""
    if response.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    headers = {k.lower(): str(v) for k, v in (response.get("headers") or {}).items()}
    return Answer(response["statusCode"], headers, json.loads(body) if body else None)
