"""Scenario 7: oversized and malformed input at every route of a real embedded server (over HTTP,
through its gateway) and in a pool's queue.

API: every route of `tests/functions/api/test_fuzz_routes.py`'s ROUTES gets broken bodies
(invalid JSON and UTF-8, wrong types, 100,000-deep nesting, NaN, a 9 MB field, seeded
mutations of a valid body), broken Content-Length headers and bodies over the 10 MB limit on raw
sockets, odd paths, methods and queries. Never a 5xx and never a hang; every refusal is a 4xx;
and a refused request leaves every table of the server's SQLite files (store, queue, logs) byte
for byte as it was.

Queue: malformed, oversized and unknown-run messages sent to the pool's queue end deleted (a run
that cannot be claimed) or dead-lettered (a message that cannot be read); one too large for SQS
is refused at the send; the worker keeps serving.
"""

from __future__ import annotations

import hashlib
import json
import socket
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from e2e.harness import free_port, wait_for

from .driver import Figures, Installation, Ledger, chaos_runs, wait_all_terminal
from .invariants import check_runs

pytestmark = [pytest.mark.reliability, pytest.mark.e2e]

_API_TESTS = Path(__file__).parents[1] / "functions"
if str(_API_TESTS) not in sys.path:
    sys.path.insert(0, str(_API_TESTS))
from api.test_fuzz_routes import (  # noqa: E402 - the route list is kept by the API tests
    DROPPED,
    ROUTES,
    leaf_paths,
    oddities_like,
    valid_body,
    value_at,
    with_value,
)

NINE_MB = 9 * 1024 * 1024
OVER_LIMIT = 10 * 1024 * 1024 + 1


@pytest.fixture
def quiet(tmp_path):
    """An installation whose timers never fire during the test (nothing writes in the
    background, so any write is the request's)."""
    inst = Installation(tmp_path / "home", free_port(), heartbeat_timeout=600)
    inst.start_server("--scheduler-interval", "3600")
    yield inst
    inst.close()


def snapshot(data_dir: Path) -> str:
    """A digest of every row of every table of the server's SQLite files, and its files."""
    digest = hashlib.sha256()
    for name in ("store.db", "queue.db", "logs.db", "events.db"):
        conn = sqlite3.connect(f"file:{data_dir / name}?mode=ro", uri=True)
        try:
            tables = [r[0] for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
            for table in tables:
                digest.update(table.encode())
                for row in conn.execute(f'SELECT * FROM "{table}" ORDER BY 1, 2'):
                    digest.update(repr(row).encode())
        finally:
            conn.close()
    for path in sorted(data_dir.rglob("*")):
        if path.is_file() and path.suffix not in (".db", ".db-wal", ".db-shm"):
            digest.update(f"{path.relative_to(data_dir)}:{path.stat().st_size}".encode())
    return digest.hexdigest()


def make_world(inst: Installation) -> dict[str, str]:
    """Real ids for the path parameters: a deployment, a running run with its lease, logs."""
    with inst.api() as api:
        deployment = api.post("/deployments", json={
            "flow_name": "etl", "name": "nightly", "entrypoint": "f.py:etl", "pool": "etl",
            "parameter_schema": {"type": "object", "properties": {"day": {"type": "string"}}}})
        assert deployment.status_code in (200, 201), deployment.text
        run = api.post("/deployments/etl/nightly/runs", json={"parameters": {"day": "mon"}})
        run_id = run.json()["id"]
        lease = api.post(f"/flow-runs/{run_id}/claim", json={"worker": "w"}).json()["lease"]
        api.post(f"/flow-runs/{run_id}/state", json={
            "state": {"type": "RUNNING", "name": "Running"}, "transition_id": "t0",
            "lease": lease})
        automation = api.post("/automations", json={
            "name": "pause on failure", "enabled": False,
            "trigger": {"type": "reactive", "match": {"names": ["sluice.flow-run.Failed"]}},
            "actions": [{"type": "pause-deployment", "deployment": "etl/nightly"}]})
        assert automation.status_code in (200, 201), automation.text
    return {"flow_run_id": run_id, "lease": lease, "deployment_id": deployment.json()["id"],
            "flow_name": "etl", "name": "nightly", "pool": "etl", "sha256": "ab" * 32,
            "automation_id": automation.json()["id"]}


def fill(template: str, world: dict[str, str], odd: str | None = None) -> str:
    import re

    def value(match: re.Match[str]) -> str:
        if odd is not None:
            return odd
        return world["pool"] if template.startswith("/pools") else world[match.group(1)]
    return re.sub(r"\{(\w+)\}", value, template)


def broken_bodies(route: tuple[str, str], world: dict[str, str], rng) -> list[bytes]:  # noqa: ANN001
    base = valid_body(route, world)
    text = json.dumps(base)
    bodies = [b"", b"{", b"not json", b"\xff\xfe\x00\x81 bad utf-8", b"[]", b'"a string"',
              b"123", b"null", b"{" * 5 + b"}" * 5, b"[" * 100_000 + b"]" * 100_000,
              text[: len(text) // 2].encode(), text.encode() + b"garbage",
              json.dumps({"a": "x" * NINE_MB}).encode()]
    if isinstance(base, dict) and base:
        bodies += [
            text.replace("}", ', "extra": NaN}', 1).encode(),
            json.dumps({**base, **{k: "x" * NINE_MB for k in list(base)[:1]}}).encode(),
            json.dumps({**base, **{k: 10**400 for k in list(base)[:1]}}).encode(),
            json.dumps({**base, **{k: float("inf") for k in list(base)[-1:]}}).encode(),
        ]
        positions = leaf_paths(base)
        for _ in range(max(6, chaos_runs(12) // 2)):  # seeded almost-right mutations
            position = rng.choice(positions)
            value = rng.choice([DROPPED, *oddities_like(value_at(base, position)), None,
                                float("nan"), "\x00", "\ud800"])
            bodies.append(json.dumps(with_value(base, position, value)).encode())
    return bodies


def raw_request(port: int, head: str, body: bytes = b"", timeout: float = 5) -> int:
    """Send bytes on a fresh socket and keep it open, as a client waiting for its answer does;
    the status line's code (0 when the server closed the connection without one, -1 when it
    did not answer within `timeout`: it is waiting for a body that will never come)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(head.encode("latin-1") + body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before taking the whole body
        data = b""
        try:
            while b"\r\n" not in data:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
        except ConnectionResetError:
            pass
        except TimeoutError:
            return -1
    return int(data.split()[1]) if data.startswith(b"HTTP/") else 0


def test_malformed_and_oversized_requests_get_4xx_and_write_nothing(quiet, seed, rng):
    started = time.monotonic()
    inst = quiet
    world = make_world(inst)
    data_dir = inst.home / "server"
    refused = accepted = 0
    writes_seen = [0]  # accepted requests that changed the files: the snapshot sees writes
    failures: list[str] = []
    before = snapshot(data_dir)
    http = httpx.Client(base_url=inst.url, timeout=30,
                      headers={"authorization": f"Bearer {inst.token}"})

    def check(label: str, status: int, body: bytes | None = None) -> None:
        nonlocal before, refused, accepted
        after = snapshot(data_dir)
        if status >= 500 or status <= 0:
            failures.append(f"{label}: {status} {body[:200] if body else ''!r}")
        elif status >= 400:
            refused += 1
            if after != before:
                failures.append(f"{label}: refused with {status} but wrote")
            if body is not None:
                try:
                    answer = json.loads(body)
                    assert {"error", "message"} <= set(answer)
                except (ValueError, AssertionError, TypeError):
                    failures.append(f"{label}: {status} without the error JSON: {body[:200]!r}")
        else:
            accepted += 1
            writes_seen[0] += after != before
        before = after

    for route in ROUTES:
        method, template = route
        path = fill(template, world)
        if method != "GET":
            for number, body in enumerate(broken_bodies(route, world, rng)):
                for content_type in ("application/json", "text/plain"):
                    if content_type == "text/plain" and number % 4:
                        continue
                    answer = http.request(method, path, content=body,
                                          headers={"content-type": content_type})
                    check(f"{method} {template} body#{number} {content_type}",
                          answer.status_code, answer.content)
        for odd in ("x" * 3000, "%00", "..%2F..%2Fetc", "%ZZ", "\u202e", "a b", "-1"):
            if "{" in template:
                odd_path = fill(template, world, odd)
                answer = http.request(method, odd_path, content=b"{}" if method != "GET"
                                      else None)
                check(f"{method} {template} path {odd[:10]!r}", answer.status_code,
                      answer.content)
        for query in ({"limit": "-1"}, {"limit": "1e309"}, {"cursor": "\x00garbage"},
                      {"state_type": "BOGUS"}, {"scheduled_after": "yesterday"}):
            answer = http.request(method, path, params=query,
                                  content=b"{}" if method != "GET" else None)
            check(f"{method} {template} query {query}", answer.status_code, answer.content)
        # Headers the gateway must not trust, on raw sockets (httpx would fix them).
        for length in ("abc", "-1", "99999999999999999999", str(OVER_LIMIT)):
            status = raw_request(inst.port, f"{method} {path} HTTP/1.1\r\nHost: x\r\n"
                                 f"Authorization: Bearer {inst.token}\r\n"
                                 f"Content-Length: {length}\r\n\r\n")
            check(f"{method} {template} content-length {length}", status)
        status = raw_request(inst.port, f"{method} {path} HTTP/1.1\r\nHost: x\r\n"
                             f"Authorization: Bearer {inst.token}\r\n"
                             f"Content-Length: {OVER_LIMIT}\r\n\r\n", b"x" * 65536)
        check(f"{method} {template} over the limit", status)
    for method in ("PUT", "OPTIONS", "TRACE", "BREW"):
        answer = http.request(method, "/flow-runs")
        check(f"{method} /flow-runs", answer.status_code)
    http.close()
    Figures("7a bad input at every route", seed, runs=refused + accepted, workers=0,
            crashes_injected=refused, lost=0, duplicated=0,
            seconds=time.monotonic() - started,
            notes={"requests": refused + accepted, "refused_4xx": refused,
                   "accepted": accepted, "failures": len(failures)}).save()
    assert not failures, f"seed {seed}: {len(failures)} bad answers:\n  " + "\n  ".join(
        failures[:30])
    assert refused > 20 * len(ROUTES)
    # The snapshot sees writes (so "refused but wrote" above can fail): how many of the
    # accepted requests write depends on the seed's mutations, so only that some did.
    assert writes_seen[0] > 0, writes_seen


def test_bad_queue_messages_are_deleted_or_dead_lettered_and_the_worker_keeps_serving(
        installation, tmp_path, seed, rng):
    import boto3
    from botocore.exceptions import ClientError

    started = time.monotonic()
    inst = installation
    ref = inst.deploy("chaos_flow", "ok")
    ledger = Ledger(tmp_path / "ledger")
    done = inst.trigger(ref, ledger=str(ledger), steps=1, step_seconds=0)
    worker = inst.start_worker("--visibility-timeout", "1", name="steady", limit=2)
    assert inst.wait_terminal(done, 60)["state"]["type"] == "COMPLETED"
    sqs = boto3.client("sqs", endpoint_url=f"{inst.url}/sqs", region_name="us-east-1",
                       aws_access_key_id="sluice", aws_secret_access_key=inst.token)
    url = sqs.get_queue_url(QueueName="default")["QueueUrl"]
    unreadable: list[str] = [
        "garbage {", "", " ", "[]", "null", json.dumps({"pool": "default"}),
        json.dumps({"flow_run_id": "no-such-run"}),  # no pool
        json.dumps({"flow_run_id": "x" * 3000, "pool": "default"}),  # the API says 422
        json.dumps({"flow_run_id": 5}), json.dumps({"flow_run_id": None}),
        json.dumps({"flow_run_id": "x", "attempt": "first"}),
        json.dumps({"flow_run_id": "x", "scheduled_at": "yesterday"}),
        json.dumps({"flow_run_id": ["a"], "junk": "y" * 200_000}),
    ]
    unclaimable: list[str] = [
        json.dumps({"flow_run_id": "no-such-run", "pool": "default", "attempt": 0}),
        json.dumps({"flow_run_id": "../../etc/passwd", "pool": "default"}),
        json.dumps({"flow_run_id": "%2e%2e%2f", "pool": "default", "extra": [1, {"a": None}]}),
        json.dumps({"flow_run_id": done, "pool": "default", "attempt": 0}),  # already ended
        json.dumps({"flow_run_id": done, "pool": "default", "attempt": 99}),
        json.dumps({"flow_run_id": "no-such-run", "pool": "default", "filler": "z" * 250_000}),
    ]
    too_large = [json.dumps({"flow_run_id": "x", "filler": "z" * 300_000}), "\x00 not xml-safe",
                 "lone \ud800 surrogate"]
    sent_unreadable = 0
    copies = chaos_runs(12) // 50 + 1  # each bad message this many times (more under chaos)
    unreadable, unclaimable = unreadable * copies, unclaimable * copies
    messages = [(m, "unreadable") for m in unreadable] + [(m, "unclaimable") for m in
                                                          unclaimable]
    rng.shuffle(messages)
    refused_at_send = 0
    for body, kind in messages + [(m, "invalid") for m in too_large]:
        try:
            sqs.send_message(QueueUrl=url, MessageBody=body)
        except ClientError as exc:
            status = exc.response["ResponseMetadata"]["HTTPStatusCode"]
            assert 400 <= status < 500, (body[:50], exc.response)
            if kind == "invalid" or not body:
                refused_at_send += 1
                continue
            raise
        else:
            assert kind != "invalid", f"SQS would refuse this message: {body[:60]!r}"
            sent_unreadable += kind == "unreadable"
    # The worker keeps serving meanwhile.
    normal = [inst.trigger(ref, ledger=str(ledger), steps=1, step_seconds=0) for _ in range(3)]
    wait_all_terminal(inst, normal, timeout=60)
    with inst.api() as api:
        def settled() -> dict[str, Any] | None:
            pool = api.get("/pools/default").json()
            return pool if pool["queue_depth"] == 0 else None

        # Five receives of 1 s visibility each before the dead-letter queue (maxReceiveCount).
        pool = wait_for(settled, 60 + 2 * len(messages),
                        "every bad message to be deleted or dead-lettered")
        runs = api.get("/flow-runs", params={"limit": 200}).json()["items"]
    with inst.reader() as reader:
        states = reader.states(normal)
        findings = check_runs(reader, [done, *normal], ledger=ledger)
    assert worker.popen.poll() is None, worker.output()
    Figures("7b bad queue messages", seed, runs=len(messages) + len(too_large), workers=1,
            crashes_injected=len(messages) + len(too_large), lost=0, duplicated=0,
            seconds=time.monotonic() - started,
            notes={"dead_lettered": pool["dlq_depth"], "refused_at_send": refused_at_send,
                   "deleted": len(unclaimable)}).save()
    findings.assert_clean(seed)
    assert set(states.values()) == {"COMPLETED"}
    assert pool["dlq_depth"] == sent_unreadable, pool
    assert refused_at_send == len(too_large) + sum(1 for m in unreadable if not m)
    # Nothing was created or changed by the bad messages: only the four good runs exist.
    assert sorted(r["id"] for r in runs) == sorted([done, *normal])
