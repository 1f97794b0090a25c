"""HTTP plumbing of the client: signing, retries with backoff and jitter, error mapping."""

from __future__ import annotations

import random
import ssl
import threading
import time
from typing import Any

import httpx

from .. import exceptions as errors
from ..profiles import Connection
from .keepalive import KeepAlivePoster

#: Statuses worth retrying: throttling and the gateway/service being briefly unavailable.
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
_BY_CODE: dict[str, type[errors.SluiceError]] = {}


def _error_classes() -> dict[str, type[errors.SluiceError]]:
    if not _BY_CODE:
        stack = [errors.SluiceError]
        while stack:
            cls = stack.pop()
            _BY_CODE.setdefault(cls.code, cls)
            stack.extend(cls.__subclasses__())
    return _BY_CODE


class Unreachable(errors.ServiceUnavailable):
    """The control plane did not answer (connection refused, timed out) after retries."""

    code = "unreachable"


def error_from_response(response: httpx.Response) -> errors.SluiceError:
    """The SDK exception for an API error answer (`{error, message, details}`)."""
    try:
        body = response.json()
        code, message, details = body.get("error"), body.get("message"), body.get("details")
    except Exception:
        code, message, details = None, response.text[:500] or response.reason_phrase, None
    cls = _error_classes().get(code or "", None)
    if cls is None:
        cls = next((c for c in _error_classes().values()
                    if c.status_code == response.status_code and c is not errors.SluiceError),
                   errors.SluiceError)
    text = f"{message or 'request failed'} (HTTP {response.status_code})"
    if cls in (errors.Throttled, errors.ServiceUnavailable):
        retry_after = float(response.headers.get("retry-after", "1") or 1)
        error = cls(text, retry_after=retry_after, details=details)
    else:
        error = cls(text, details=details)
    error.status_code = response.status_code  # type: ignore[misc]
    return error


class SigV4Auth(httpx.Auth):
    """Signs requests for an API Gateway with IAM authorization (botocore's SigV4, the
    standard AWS credential chain: env, profile, instance role, IAM Roles Anywhere)."""

    def __init__(self, region: str) -> None:
        import botocore.session  # only AWS profiles pay for botocore

        self.region = region
        self._credentials = botocore.session.get_session().get_credentials()
        if self._credentials is None:
            raise errors.ConfigurationError(
                "no AWS credentials found for SigV4; configure them (aws configure, an instance "
                "role, or AWS_PROFILE) or use a local profile"
            )

    def auth_flow(self, request: httpx.Request) -> Any:
        signed = self.headers_for(request.method, str(request.url), request.content,
                                  request.headers.get("content-type", ""))
        for key, value in signed.items():
            request.headers[key] = value
        yield request

    def headers_for(self, method: str, url: str, body: bytes,
                    content_type: str = "application/json") -> dict[str, str]:
        """The headers that sign one request (`Authorization`, `X-Amz-Date`, ...)."""
        from botocore.auth import SigV4Auth as BotoSigV4
        from botocore.awsrequest import AWSRequest

        aws_request = AWSRequest(method=method, url=url, data=body,
                                 headers={"content-type": content_type})
        BotoSigV4(self._credentials.get_frozen_credentials(), "execute-api",
                  self.region).add_auth(aws_request)
        return dict(aws_request.headers.items())


def tls_verify(connection: Connection) -> ssl.SSLContext | bool:
    """What httpx verifies the control plane's certificate with: the system's trust store, or
    the connection's `ca_bundle` (an embedded server's self-signed certificate)."""
    if not connection.ca_bundle:
        return True
    try:
        context = ssl.create_default_context(cafile=connection.ca_bundle)
    except (OSError, ssl.SSLError) as exc:
        raise errors.ConfigurationError(
            f"cannot read the CA bundle {connection.ca_bundle} ({exc}); fix the profile's "
            "ca_bundle (or SLUICE_CA_BUNDLE): a PEM file of the certificates to trust"
        ) from None
    # Trust the certificate itself even when it is not a root (a server's own certificate
    # from a public CA), as Python 3.13 and urllib3 2 (boto3's SQS client) do.
    context.verify_flags |= getattr(ssl, "VERIFY_X509_PARTIAL_CHAIN", 0)
    return context


def _headers(connection: Connection) -> dict[str, str]:
    headers = {"user-agent": "sluice-client"}
    if connection.api_token:
        headers["authorization"] = f"Bearer {connection.api_token}"
    return headers


def _auth(connection: Connection) -> SigV4Auth | None:
    if connection.kind != "aws":
        return None
    if not connection.region:
        raise errors.ConfigurationError(
            "an aws control plane needs a region: set SLUICE_REGION or the profile's region"
        )
    return SigV4Auth(connection.region)


def _timeout(seconds: float) -> httpx.Timeout:
    return httpx.Timeout(seconds, connect=min(seconds, 5.0))


def build_http_client(connection: Connection, timeout: float) -> httpx.Client:
    return _http_client(connection, timeout, _auth(connection), tls_verify(connection))


def _http_client(connection: Connection, timeout: float, auth: httpx.Auth | None,
                 verify: ssl.SSLContext | bool) -> httpx.Client:
    return httpx.Client(base_url=connection.api_url, headers=_headers(connection), auth=auth,
                        timeout=_timeout(timeout), verify=verify)


def build_clients(connection: Connection,
                  timeout: float) -> tuple[httpx.Client, KeepAlivePoster | None]:
    """The client's httpx client, and the keep-alive poster of its events batches (None when
    a proxy applies: see `keepalive`), with the same headers, signature and TLS trust."""
    auth, verify = _auth(connection), tls_verify(connection)
    poster = KeepAlivePoster.for_connection(
        connection.api_url, headers=_headers(connection), timeout=_timeout(timeout),
        verify=verify, sign=auth.headers_for if auth is not None else None)
    return _http_client(connection, timeout, auth, verify), poster


def backoff_delay(attempt: int, base: float = 0.2, cap: float = 5.0) -> float:
    """Full-jitter exponential backoff (attempt 1, 2, ...)."""
    return random.uniform(0, min(cap, base * 2 ** (attempt - 1)))


def retry_transient(call: Any, seconds: float, *, what: str = "a control-plane call",
                    on_retry: Any = None,
                    retry_on: tuple[type[Exception], ...] = (errors.ServiceUnavailable,
                                                             errors.Throttled)) -> Any:
    """`call()`, retried with backoff while it fails with a "try again later" error (the control
    plane unreachable, 503, 429: `retry_on`) for up to `seconds`; the last such error is raised
    after that. For calls a run cannot do without, so a short outage delays it instead of
    failing it."""
    deadline = time.monotonic() + seconds
    attempt = 0
    while True:
        try:
            return call()
        except retry_on as exc:
            attempt += 1
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise
            if attempt == 1:
                import logging

                logging.getLogger("sluice.client").warning(
                    "%s failed (%s); retrying for up to %.0f s", what, exc, seconds)
            if on_retry is not None:
                on_retry()
            time.sleep(min(backoff_delay(attempt, base=0.25, cap=5.0), remaining))


class ThrottleGate:
    """What the calls of one client know about the API throttling them (HTTP 429).

    After a 429, ordinary calls (report batches, reads, polling) hold back until the answer's
    `Retry-After` has passed, so the capacity the API frees goes to lease renewals first: those
    (`urgent`) never wait at the gate and retry a 429 after at most `URGENT_RETRY_SECONDS`. A
    renewal that is late past its lease makes the run stop (fencing), a late report batch only
    arrives later; so renewals must never queue behind batches."""

    def __init__(self) -> None:
        self._until = 0.0
        self._lock = threading.Lock()

    def throttled(self, seconds: float) -> None:
        """A call was answered 429: ordinary calls wait `seconds` from now."""
        with self._lock:
            self._until = max(self._until, time.monotonic() + min(seconds, MAX_GATE_SECONDS))

    def wait_turn(self) -> None:
        """Before an ordinary call: wait out the latest 429's hint (if any)."""
        with self._lock:
            delay = self._until - time.monotonic()
        if delay > 0:
            time.sleep(delay)


#: Longest hold a 429 puts on ordinary calls (a bogus Retry-After never blocks a client).
MAX_GATE_SECONDS = 10.0
#: An urgent call (lease renewal) retries a 429 this soon at the latest, whatever the hint.
URGENT_RETRY_SECONDS = 0.25


def send(http: httpx.Client, method: str, path: str, *, json: Any = None,
         content: bytes | None = None, params: dict[str, Any] | None = None,
         attempts: int = 4, timeout: float | None = None,
         retry_statuses: frozenset[int] = RETRYABLE_STATUSES,
         gate: ThrottleGate | None = None, urgent: bool = False,
         poster: KeepAlivePoster | None = None) -> httpx.Response:
    """One API call with retries on connection errors and `retry_statuses` (429 and 5xx);
    raises the SDK's errors. `timeout` (seconds) replaces the client's for this call. With a
    `gate`, a 429 holds the client's other ordinary calls back; `urgent` calls (lease renewals)
    skip that wait and retry sooner (`ThrottleGate`). With a `poster`, a POST of `content`
    goes through it instead of `http` (`keepalive`: the reporter's batches)."""
    last: Exception | None = None
    extra: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
    for attempt in range(1, attempts + 1):
        if gate is not None and not urgent:
            gate.wait_turn()
        try:
            if poster is not None and method == "POST" and content is not None:
                response = poster.post(path, content, timeout=timeout)
            else:
                headers = {"content-type": "application/json"} if content is not None else None
                response = http.request(method, path, json=json, content=content,
                                        params=params, headers=headers, **extra)
        except httpx.TransportError as exc:
            last = exc
        else:
            if response.status_code < 400:
                return response
            error = error_from_response(response)
            if response.status_code == 429 and gate is not None:
                gate.throttled(getattr(error, "retry_after", None) or 1.0)
            if response.status_code not in retry_statuses:
                raise error
            last = error
        if attempt < attempts:
            wait = getattr(last, "retry_after", None) or backoff_delay(attempt)
            if urgent:
                wait = min(wait, random.uniform(0.5, 1.0) * URGENT_RETRY_SECONDS)
            time.sleep(min(wait, 10.0))
    if isinstance(last, errors.SluiceError):
        raise last
    raise Unreachable(f"control plane at {http.base_url} is unreachable: {last}") from last
