"""The embedded server decides auth before reading a body, refuses replayed SigV4 requests, and
answers any request-line or header bytes with a JSON 4xx (issue 13, embedded server beyond
loopback)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from unittest import mock

import boto3
import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from sluice_functions.embedded import EmbeddedServer
from sluice_functions.embedded.network import ConnectionLimits
from sluice_functions.embedded.sigv4 import MAX_CLOCK_SKEW_SECONDS, head_refusal

from .server_network_support import TOKEN, exchange, first_answer

TEN_MB = 10 * 1024 * 1024
SHORT = ConnectionLimits(head_timeout=2, body_timeout=2, idle_timeout=2, write_timeout=5)


@pytest.fixture
def server(tmp_path):
    plane = EmbeddedServer(data_dir=tmp_path / "data", port=0, token=TOKEN, tick_seconds=3600,
                           limits=SHORT).start()
    yield plane
    plane.stop()


def pools(server) -> list[str]:
    answer = httpx.get(f"{server.url}/pools", headers={"authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200, answer.text
    items = answer.json()
    items = items["items"] if isinstance(items, dict) else items
    return sorted(p["name"] for p in items)


def queued(server) -> int:
    depth = server.ports.queue.depth("default")
    return depth.visible + depth.delayed + depth.in_flight


def sqs(server, secret: str = TOKEN):
    return boto3.client("sqs", endpoint_url=server.sqs_endpoint, region_name="us-east-1",
                        aws_access_key_id="sluice", aws_secret_access_key=secret)


def signed_sqs_headers(server, body: bytes, secret: str = TOKEN,
                       at: datetime | None = None) -> dict[str, str]:
    """Headers botocore signs for a SendMessage to the embedded server, at time `at`."""
    request = AWSRequest(method="POST", url=server.sqs_endpoint, data=body, headers={
        "content-type": "application/x-amz-json-1.0",
        "x-amz-target": "AmazonSQS.SendMessage"})
    with mock.patch("botocore.auth.get_current_datetime",
                    return_value=(at or datetime.now(timezone.utc)).replace(tzinfo=None)):
        SigV4Auth(Credentials("sluice", secret), "sqs", "us-east-1").add_auth(request)
    return dict(request.headers.items())


def raw_head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


# -- auth before the body -------------------------------------------------------------------------
def test_an_unauthenticated_request_is_refused_before_its_body_is_read(server):
    # Given a request that announces a 10 MB body but sends none of it, without a token
    head = raw_head("POST", "/pools", {"content-type": "application/json",
                                       "content-length": str(TEN_MB)})
    # When it reaches the server (the client keeps the connection open, waiting)
    answer = exchange(server.port, head, half_close=False)
    # Then the 401 comes at once (had the server waited for the body, none would come) and the
    # connection is closed; no pool was created
    assert answer.status == 401, answer.data[:300]
    assert answer.json()["error"] == "unauthorized"
    assert b"connection: close" in answer.data.lower()
    assert pools(server) == ["default"]


def test_twenty_unfinished_unauthenticated_bodies_hold_nothing(server):
    # Given twenty clients that each announce 10 MB and send 1 MB of it, without a token
    body = b'{"name": "' + b"x" * (1024 * 1024) + b'"}'
    head = raw_head("POST", "/pools", {"content-type": "application/json",
                                       "content-length": str(TEN_MB)})
    answers = [exchange(server.port, head + body, half_close=False) for _ in range(20)]
    # Then every one is refused without the server waiting for the rest; nothing was written
    for answer in answers:
        assert answer.status == 401 or (answer.reset and not answer.data), answer.data[:200]
    assert any(a.status == 401 for a in answers)  # a reset may overtake a refusal, not all
    assert pools(server) == ["default"]


def test_an_unsigned_sqs_request_is_refused_before_its_body_is_read(server):
    # Given SQS requests that announce a body and send none: no signature, a malformed one,
    # and a correctly signed one dated 2020
    old = signed_sqs_headers(server, b"{}", at=datetime(2020, 1, 1, tzinfo=timezone.utc))
    cases = [{}, {"authorization": "AWS4-HMAC-SHA256 nonsense", "x-amz-date": old["X-Amz-Date"]},
             {k: v for k, v in old.items() if k.lower() != "content-length"}]
    for headers in cases:
        head = raw_head("POST", "/sqs", {"x-amz-target": "AmazonSQS.SendMessage",
                                         **headers, "content-length": str(TEN_MB)})
        # When each reaches the server, Then it is refused at once with SQS's error shape
        answer = exchange(server.port, head, half_close=False)
        assert answer.status == 403, (headers, answer.data[:300])
        assert answer.json()["__type"].startswith("com.amazonaws.sqs#")
    assert queued(server) == 0


# -- SigV4 replay -----------------------------------------------------------------------------
def test_a_correctly_signed_sqs_request_dated_2020_is_refused(server):
    # Given a SendMessage signed with the right token, but at 2020-01-01 (a captured request)
    url = sqs(server).get_queue_url(QueueName="default")["QueueUrl"]
    body = ('{"QueueUrl": "%s", "MessageBody": "replayed"}' % url).encode()
    at = datetime(2020, 1, 1, tzinfo=timezone.utc)
    headers = signed_sqs_headers(server, body, at=at)
    # When it is replayed now
    answer = httpx.post(server.sqs_endpoint, content=body, headers=headers)
    # Then it is refused as expired and nothing was enqueued
    assert answer.status_code == 403
    assert answer.json()["__type"] == "com.amazonaws.sqs#InvalidSignatureException"
    assert "expired" in answer.json()["message"]
    assert queued(server) == 0
    # ... while the same request signed now goes through (the check is about the date)
    fresh = httpx.post(server.sqs_endpoint, content=body,
                       headers=signed_sqs_headers(server, body))
    assert fresh.status_code == 200, fresh.text
    assert queued(server) == 1


def test_boto3_signing_with_a_clock_six_minutes_off_is_refused(server):
    # Given a worker whose clock is six minutes behind
    client = sqs(server)
    url = client.get_queue_url(QueueName="default")["QueueUrl"]
    behind = datetime.now(timezone.utc) - timedelta(seconds=MAX_CLOCK_SKEW_SECONDS + 60)
    # When it sends a message, Then the server refuses it and says why
    with mock.patch("botocore.auth.get_current_datetime",
                    return_value=behind.replace(tzinfo=None)):
        with pytest.raises(ClientError) as info:
            client.send_message(QueueUrl=url, MessageBody="late")
    assert info.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert "NTP" in info.value.response["Error"]["Message"]
    assert queued(server) == 0


def test_head_refusal_names_each_problem():
    now = datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc)
    good = ("AWS4-HMAC-SHA256 Credential=k/20250601/us-east-1/sqs/aws4_request, "
            "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64)
    assert head_refusal({"Authorization": good, "X-Amz-Date": "20250601T120400Z"},
                        now=now) is None
    assert head_refusal({}, now=now)[0] == "MissingAuthenticationToken"
    assert head_refusal({"authorization": "Bearer x"}, now=now)[0] == "IncompleteSignature"
    assert head_refusal({"authorization": good, "x-amz-date": "yesterday"},
                        now=now)[0] == "IncompleteSignature"
    assert head_refusal({"authorization": good, "x-amz-date": "20250602T000000Z"},
                        now=now)[0] == "SignatureDoesNotMatch"
    assert head_refusal({"authorization": good, "x-amz-date": "20250601T115400Z"},
                        now=now)[0] == "InvalidSignatureException"


# -- any header bytes get an answer -----------------------------------------------------------
@pytest.mark.parametrize("value", [
    "Bearer \u00e9t\u00e9".encode(),               # UTF-8
    b"Bearer \xe9t\xe9",                           # latin-1
    b"Bearer \xff\xfe\x80\x00",                    # not text at all
    ("Bearer " + TOKEN[:-1] + "\u00e9").encode(),  # the token with a non-ASCII last character
])
@pytest.mark.parametrize("path", ["/pools", "/sqs"])
def test_a_non_ascii_authorization_header_gets_a_refusal(server, value, path):
    # Given a request whose Authorization header is not ASCII (on the API and on the SQS path)
    extra = b"x-amz-target: AmazonSQS.SendMessage\r\n" if path == "/sqs" else b""
    request = (f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n".encode() + extra
               + b"authorization: " + value + b"\r\n\r\n{}")
    # When it is sent, Then a JSON refusal comes back (not a dropped connection)
    answer = exchange(server.port, request)
    assert answer.status in (401, 403), answer.data[:300]
    assert answer.json()
    assert pools(server) == ["default"] and queued(server) == 0


def _mutate(rng: random.Random, head: bytes) -> bytes:
    data = bytearray(head)
    for _ in range(rng.randint(1, 4)):
        position = rng.randrange(len(data))
        byte = rng.choice([0, 0x7F, 0x80, 0xFF, 0x0D, 0x0A, 0x20, 0x3A, 0x25, 0x1B,
                           rng.randrange(256)])
        action = rng.random()
        if action < 0.5:
            data[position] = byte
        elif action < 0.8:
            data.insert(position, byte)
        else:
            del data[position]
    return bytes(data)


def test_fuzzed_request_lines_and_headers_always_get_a_json_answer(server):
    # Given valid requests (with the token, without, to the API and the SQS endpoint) whose
    # request line and headers get a few random bytes replaced, inserted or removed
    rng = random.Random(13)
    bases = [
        raw_head("GET", "/health", {"authorization": f"Bearer {TOKEN}"}),
        raw_head("GET", "/pools?limit=5", {"authorization": "Bearer wrong"}),
        raw_head("POST", "/pools", {"authorization": f"Bearer {TOKEN}",
                                    "content-type": "application/json",
                                    "content-length": "2"}) + b"{}",
        raw_head("POST", "/sqs", {"x-amz-target": "AmazonSQS.GetQueueUrl",
                                  "content-length": "2"}) + b"{}",
    ]
    for i in range(160):
        base = bases[i % len(bases)]
        cut = base.index(b"\r\n\r\n") + 4
        request = _mutate(rng, base[:cut]) + base[cut:]
        # When each is sent (then the client stops sending)
        answer = exchange(server.port, request)
        # Then an HTTP answer comes back, never a 5xx, and an error is JSON
        assert answer.status is not None, (request, answer)
        assert answer.status < 500, (request, answer.data[:300])
        body = first_answer(answer.data).partition(b"\r\n\r\n")[2]
        if answer.status >= 400 and body:
            assert isinstance(httpx.Response(200, content=body).json(), dict), (request, body)
    # And the server still serves, and no pool appeared from a mangled request but "{}"'s
    # (which is refused: a pool needs a name)
    assert pools(server) == ["default"]


@pytest.mark.parametrize("request_bytes, status", [
    (b"\r\n\r\n", 400),                                            # an empty request line
    (b"GET /health\r\n\r\n", 400),                                 # HTTP/0.9
    (b"GET /health HTTP/2.0\r\n\r\n", 400),                        # a version we do not speak
    (b"GET " + b"/a" * 40_000 + b" HTTP/1.1\r\n\r\n", 414),        # a request line too long
    (b"GET /health HTTP/1.1\r\n" + b"x: y\r\n" * 120 + b"\r\n", 431),  # too many headers
    (b"POST /pools HTTP/1.1\r\ntransfer-encoding: chunked\r\nauthorization: Bearer "
     + TOKEN.encode() + b"\r\n\r\n2\r\n{}\r\n0\r\n\r\n", 411),     # no Content-Length
    (b"POST /pools HTTP/1.1\r\ncontent-length: 2\r\ncontent-length: 40\r\nauthorization: "
     b"Bearer " + TOKEN.encode() + b"\r\n\r\n{}", 400),            # two lengths: smuggling
    (b"POST /pools HTTP/1.1\r\ncontent-length: 20\r\nauthorization: Bearer "
     + TOKEN.encode() + b"\r\n\r\n{}", 400),                       # a body cut short
    (b"GET //[ HTTP/1.1\r\nauthorization: Bearer " + TOKEN.encode() + b"\r\n\r\n", 404),
    (b"GET http://evil/pools HTTP/1.1\r\nauthorization: Bearer " + TOKEN.encode()
     + b"\r\n\r\n", 400),                                          # not a path
])
def test_malformed_requests_get_a_json_4xx(server, request_bytes, status):
    # Given a malformed request, When it is sent, Then a JSON 4xx names the problem
    answer = exchange(server.port, request_bytes)
    assert answer.status == status, answer.data[:300]
    assert answer.json()["message"]
    assert pools(server) == ["default"]
