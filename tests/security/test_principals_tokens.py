"""Operators, workers and flow processes are different principals on the embedded server, and
pools are isolated: each attack is refused, and nothing is written.

Given a server with two pools ("etl", "ml"), a deployment and a queued run in each; the
operator's token, a worker token of "etl" and a flow-process token of the etl run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import boto3
import httpx
import pytest
from botocore.exceptions import ClientError

from sluice import tokens
from sluice_functions.embedded.server import EmbeddedServer

OPERATOR = tokens.new_operator_token()
NOW = datetime.now(UTC).isoformat()


@dataclass
class World:
    server: EmbeddedServer
    etl_run: str
    ml_run: str
    etl_deployment: str
    ml_deployment: str

    def http(self, token: str | None) -> httpx.Client:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.server.url, headers=headers, timeout=10)

    def run(self, flow_run_id: str) -> dict:
        with self.http(OPERATOR) as http:
            return http.get(f"/flow-runs/{flow_run_id}").json()

    def counts(self) -> tuple[int, int, int]:
        """(deployments, runs, pools): what an attack must not change."""
        with self.http(OPERATOR) as http:
            return (len(http.get("/deployments").json()["items"]),
                    len(http.get("/flow-runs", params={"limit": 200}).json()["items"]),
                    len(http.get("/pools").json()["items"]))


@pytest.fixture
def world(tmp_path) -> Iterator[World]:
    server = EmbeddedServer(data_dir=tmp_path / "data", port=0, token=OPERATOR,
                            tick_seconds=3600).start()
    ids = {}
    with httpx.Client(base_url=server.url, timeout=10,
                      headers={"authorization": f"Bearer {OPERATOR}"}) as http:
        for pool in ("etl", "ml"):
            assert http.post("/pools", json={"name": pool}).status_code == 200
            deployment = http.post("/deployments", json={
                "flow_name": f"{pool}-flow", "name": "nightly", "entrypoint": "flows.py:f",
                "pool": pool, "source": {"kind": "local", "path": "/srv/project"}}).json()
            ids[f"{pool}_deployment"] = deployment["id"]
            run = http.post(f"/deployments/{pool}-flow/nightly/runs", json={})
            assert run.status_code == 201, run.text
            ids[f"{pool}_run"] = run.json()["id"]
    yield World(server, **ids)
    server.stop()


def worker_token(pool: str, *grants: str) -> str:
    return tokens.pool_token(OPERATOR, pool, tuple(grants))


def claim(world: World, token: str, pool: str, flow_run_id: str) -> httpx.Response:
    with world.http(token) as http:
        return http.post(f"/pools/{pool}/flow-runs/{flow_run_id}/claim",
                         json={"worker": "w1", "attempt": 0})


# -- no credentials ------------------------------------------------------------------------------

@pytest.mark.parametrize("token", [None, "", "guess", OPERATOR[:-1] + "x",
                                   tokens.pool_token("another-servers-token" * 2, "etl"),
                                   worker_token("etl")[:-2] + "AA"])
def test_no_valid_token_is_401_and_writes_nothing(world, token):
    before = world.counts()
    with world.http(token) as http:
        for method, path, body in (("POST", "/pools", {"name": "evil"}),
                                   ("POST", "/deployments", {"flow_name": "x", "name": "y",
                                                             "entrypoint": "e.py:x"}),
                                   ("GET", "/flow-runs", None)):
            answer = http.request(method, path, json=body)
            assert answer.status_code == 401, (method, path, answer.text)
            assert answer.json()["error"] == "unauthorized"
    assert world.counts() == before


# -- a worker of one pool ------------------------------------------------------------------------

OPERATOR_ACTIONS = [
    ("POST", "/deployments", {"flow_name": "x", "name": "y", "entrypoint": "e.py:x",
                              "pool": "etl"}),
    ("POST", "/deployments/etl-flow/nightly/runs", {"parameters": {}}),
    ("POST", "/deployments/ml-flow/nightly/backfill", {"start": NOW, "end": NOW}),
    ("PATCH", "/deployments/etl-flow/nightly", {"paused": True}),
    ("DELETE", "/deployments/ml-flow/nightly", None),
    ("POST", "/pools", {"name": "evil"}),
    ("POST", "/bundles", {"sha256": "ab" * 32, "size": 10}),
    ("GET", "/flow-runs", None),
    ("GET", "/deployments", None),
    ("GET", "/flow-runs/resolve?ref=abcdef", None),
    ("DELETE", "/flow-runs/0123456789abcdef", None),
    ("PATCH", "/pools/etl", {"paused": True}),
    ("DELETE", "/pools/etl?force=true", None),
    ("GET", "/stats/flow-runs", None),
    ("GET", "/stats/deployments", None),
    ("POST", "/automations", {"name": "x", "trigger": {"type": "reactive"},
                              "actions": [{"type": "pause-pool", "pool": "etl"}]}),
    ("GET", "/automations", None),
]


@pytest.mark.parametrize("method,path,body", OPERATOR_ACTIONS,
                         ids=[f"{m} {p}" for m, p, _ in OPERATOR_ACTIONS])
def test_a_worker_token_cannot_do_what_operators_do(world, method, path, body):
    before = world.counts()
    with world.http(worker_token("etl")) as http:
        answer = http.request(method, path, json=body)
    assert answer.status_code == 403, answer.text
    assert answer.json()["error"] == "forbidden"
    assert "pool" in answer.json()["message"]
    assert world.counts() == before
    assert world.run(world.etl_run)["state"]["type"] == "SCHEDULED"


def test_a_worker_token_cannot_cancel_fake_or_read_runs_through_operator_routes(world):
    with world.http(worker_token("etl")) as http:
        for method, path, body in (
                ("POST", f"/flow-runs/{world.ml_run}/cancel", {}),
                ("POST", f"/flow-runs/{world.etl_run}/cancel", {}),
                ("POST", f"/flow-runs/{world.ml_run}/retry", {}),
                ("POST", f"/flow-runs/{world.ml_run}/claim", {"worker": "w1"}),
                ("POST", f"/flow-runs/{world.ml_run}/state",
                 {"state": {"type": "COMPLETED", "timestamp": NOW}, "transition_id": "t"}),
                ("GET", f"/flow-runs/{world.ml_run}", None),
                ("GET", f"/flow-runs/{world.ml_run}/logs", None),
                ("POST", "/flow-runs", {"flow_name": "fake"})):
            answer = http.request(method, path, json=body)
            assert answer.status_code == 403, (method, path, answer.text)
    assert world.run(world.ml_run)["state"]["type"] == "SCHEDULED"
    assert world.run(world.etl_run)["state"]["type"] == "SCHEDULED"


def test_a_worker_cannot_claim_or_read_another_pools_run(world):
    # Through the other pool's routes: its token does not reach them.
    assert claim(world, worker_token("etl"), "ml", world.ml_run).status_code == 403
    # Through its own pool's routes: the run is not there (404, as if it did not exist).
    refused = claim(world, worker_token("etl"), "etl", world.ml_run)
    assert refused.status_code == 404, refused.text
    with world.http(worker_token("etl")) as http:
        assert http.get(f"/pools/etl/flow-runs/{world.ml_run}").status_code == 404
        assert http.get(f"/pools/etl/deployments/{world.ml_deployment}").status_code == 404
        assert http.get(f"/pools/etl/bundles/{'ab' * 32}").status_code == 404
        assert http.get("/pools/ml").status_code == 403
    assert world.run(world.ml_run)["state"]["type"] == "SCHEDULED"
    assert world.run(world.ml_run)["worker"] is None
    # Its own pool's run it claims.
    assert claim(world, worker_token("etl"), "etl", world.etl_run).status_code == 200


def test_a_worker_cannot_create_runs_of_a_deployment_or_orphan_runs_in_its_pool(world):
    before = world.counts()
    with world.http(worker_token("etl")) as http:
        of_deployment = http.post("/pools/etl/flow-runs", json={
            "flow_name": "etl-flow", "deployment_id": world.etl_deployment})
        orphan = http.post("/pools/etl/flow-runs", json={"flow_name": "fake"})
        under_other_pool = http.post("/pools/etl/flow-runs", json={
            "flow_name": "sub", "parent_flow_run_id": world.ml_run,
            "state": {"type": "PENDING", "timestamp": NOW}, "lease": "l" * 24})
    assert (of_deployment.status_code, orphan.status_code) == (422, 422)
    assert under_other_pool.status_code == 404
    assert world.counts() == before


def sqs(world: World, token: str):
    access_key, secret = tokens.sqs_credentials(token)
    return boto3.client("sqs", endpoint_url=world.server.sqs_endpoint, region_name="us-east-1",
                        aws_access_key_id=access_key, aws_secret_access_key=secret)


def test_a_worker_token_reaches_its_pools_queue_only(world):
    operator = sqs(world, OPERATOR)
    etl_url = operator.get_queue_url(QueueName="etl")["QueueUrl"]
    ml_url = operator.get_queue_url(QueueName="ml")["QueueUrl"]
    worker = sqs(world, worker_token("etl"))
    assert worker.get_queue_url(QueueName="etl")["QueueUrl"] == etl_url
    assert worker.receive_message(QueueUrl=etl_url, WaitTimeSeconds=0)["Messages"]
    for url in (ml_url, etl_url.replace("/etl", "/etl/dead-letter"), ml_url + "/dead-letter"):
        with pytest.raises(ClientError):
            worker.receive_message(QueueUrl=url, WaitTimeSeconds=0)
    with pytest.raises(ClientError):
        worker.get_queue_url(QueueName="ml")
    for url in (ml_url, etl_url):  # nor send fake run messages, even to its own queue
        with pytest.raises(ClientError):
            worker.send_message(QueueUrl=url, MessageBody=json.dumps(
                {"flow_run_id": world.ml_run, "pool": "ml", "attempt": 0}))
    # The ml run's message is still there, untouched.
    assert operator.receive_message(QueueUrl=ml_url, WaitTimeSeconds=0)["Messages"]


# -- a flow process ------------------------------------------------------------------------------

def test_a_flow_process_token_reaches_its_run_and_its_subflows_only(world):
    claimed = claim(world, worker_token("etl"), "etl", world.etl_run).json()
    lease = claimed["lease"]
    run_token = tokens.run_token(worker_token("etl"), world.etl_run)
    with world.http(run_token) as http:
        # Its own run: reported with the lease.
        running = http.post(f"/pools/etl/flow-runs/{world.etl_run}/state", json={
            "state": {"type": "RUNNING", "timestamp": NOW}, "transition_id": "t1",
            "lease": lease})
        assert running.status_code == 200 and running.json()["status"] == "ACCEPT"
        # A subflow it creates, then reports.
        sub = http.post("/pools/etl/flow-runs", json={
            "flow_name": "sub", "parent_flow_run_id": world.etl_run, "lease": "s" * 24,
            "state": {"type": "PENDING", "timestamp": NOW}})
        assert sub.status_code == 201, sub.text
        sub_id = sub.json()["id"]
        assert http.post(f"/pools/etl/flow-runs/{sub_id}/heartbeat",
                         json={"lease": "s" * 24}).status_code == 200
        # Not: claims, other runs of its own pool, other pools, operator actions.
        second = httpx.post(f"{world.server.url}/deployments/etl-flow/nightly/runs", json={},
                            headers={"authorization": f"Bearer {OPERATOR}"}).json()["id"]
        for method, path, body in (
                ("POST", f"/pools/etl/flow-runs/{second}/claim", {"worker": "w"}),
                ("GET", f"/pools/etl/flow-runs/{second}", None),
                ("POST", f"/pools/etl/flow-runs/{second}/state",
                 {"state": {"type": "CANCELLED", "timestamp": NOW}, "transition_id": "x"}),
                ("GET", f"/pools/ml/flow-runs/{world.ml_run}", None),
                ("GET", f"/pools/etl/deployments/{world.etl_deployment}", None),
                ("POST", "/pools/etl/workers", {"name": "fake"}),
                ("POST", "/deployments/etl-flow/nightly/runs", {}),
                ("GET", "/flow-runs", None)):
            answer = http.request(method, path, json=body)
            assert answer.status_code == 403, (method, path, answer.text)
    assert world.run(second)["state"]["type"] == "SCHEDULED"


def test_triggering_a_deployment_needs_a_grant_for_that_deployment(world):
    def trigger(token: str, ref: str) -> int:
        with world.http(token) as http:
            return http.post(f"/deployments/{ref}/runs", json={}).status_code

    before = world.counts()
    plain = tokens.run_token(worker_token("etl"), world.etl_run)
    granted = tokens.run_token(worker_token("etl", "ml-flow/nightly"), world.etl_run)
    assert trigger(plain, "ml-flow/nightly") == 403
    assert trigger(granted, "etl-flow/nightly") == 403  # another deployment: no
    assert world.counts() == before
    assert trigger(granted, "ml-flow/nightly") == 201
    # The grant cannot be added by whoever holds a pool token: it is inside the HMAC.
    forged = worker_token("etl").split(".")
    forged[2] = worker_token("etl", "ml-flow/nightly").split(".")[2]
    assert trigger(".".join(forged), "ml-flow/nightly") == 401


def test_a_subflow_create_cannot_show_or_detect_a_run_it_may_not_see(world):
    """Naming an existing run's id in a subflow create is idempotent only for a resent create of
    that same subflow; any other run, of this pool or another, gets one answer that neither shows
    it (parameters) nor tells whether it exists."""
    assert claim(world, worker_token("etl"), "etl", world.etl_run).status_code == 200
    run_token = tokens.run_token(worker_token("etl"), world.etl_run)
    second = httpx.post(f"{world.server.url}/deployments/etl-flow/nightly/runs", json={},
                        headers={"authorization": f"Bearer {OPERATOR}"}).json()["id"]

    def create(token: str, flow_run_id: str, flow_name: str = "etl-flow") -> httpx.Response:
        with world.http(token) as http:
            return http.post("/pools/etl/flow-runs", json={
                "id": flow_run_id, "flow_name": flow_name, "parent_flow_run_id": world.etl_run,
                "lease": "s" * 24, "state": {"type": "PENDING", "timestamp": NOW}})

    answers = [create(token, target, flow_name)
               for token in (run_token, worker_token("etl"))
               for target in (second, world.ml_run)
               for flow_name in ("etl-flow", "guess")]
    assert {a.status_code for a in answers} == {409}
    for answer, target in zip(answers, [second, second, world.ml_run, world.ml_run] * 2):
        assert answer.json()["message"] == (f"flow run id {target} is taken: create the "
                                            "subflow with another id"), answer.text
    with world.http(run_token) as http:
        keyed = http.post("/pools/etl/flow-runs", json={
            "flow_name": "sub", "parent_flow_run_id": world.etl_run, "idempotency_key": "k",
            "lease": "s" * 24, "state": {"type": "PENDING", "timestamp": NOW}})
    assert keyed.status_code == 422
    # A resent create of its own subflow is still idempotent.
    own = create(run_token, "0190-own-subflow", "sub")
    assert own.status_code == 201 and create(run_token, "0190-own-subflow", "sub").status_code \
        == 201
    assert world.run(second)["parent_flow_run_id"] is None


def test_a_flow_process_cannot_renew_its_own_attempts_lease(world):
    lease = claim(world, worker_token("etl"), "etl", world.etl_run).json()["lease"]
    run_token = tokens.run_token(worker_token("etl"), world.etl_run)
    with world.http(run_token) as http:
        answer = http.post(f"/pools/etl/flow-runs/{world.etl_run}/heartbeat",
                           json={"lease": lease})
    assert answer.status_code == 403 and "its worker does" in answer.json()["message"]


def test_an_sqs_request_cannot_make_the_server_hold_a_large_body(world):
    """SQS requests are checked in full only with their body (the signature covers it), so an
    SQS body is bounded by SQS's own size: a 10 MB announcement is refused before any byte."""
    import socket
    from datetime import UTC as utc
    from datetime import datetime as dt

    stamp = dt.now(utc).strftime("%Y%m%dT%H%M%SZ")
    head = (f"POST /sqs/ HTTP/1.1\r\nHost: x\r\nX-Amz-Target: AmazonSQS.SendMessage\r\n"
            f"X-Amz-Date: {stamp}\r\nAuthorization: AWS4-HMAC-SHA256 Credential=made-up/"
            f"{stamp[:8]}/us-east-1/sqs/aws4_request, SignedHeaders=host;x-amz-date, "
            f"Signature={'0' * 64}\r\nContent-Type: application/x-amz-json-1.0\r\n"
            f"Content-Length: {10 * 1024 * 1024}\r\n\r\n")
    with socket.create_connection(("127.0.0.1", world.server.port), timeout=10) as sock:
        sock.sendall(head.encode())
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
