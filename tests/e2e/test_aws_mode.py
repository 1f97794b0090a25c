"""AWS mode, end to end, offline: moto server plays AWS (DynamoDB, SQS, CloudWatch Logs, S3,
CloudFormation), the `api` Lambda handler with the AWS adapters serves HTTP behind the embedded
server's gateway (as API Gateway would), the scheduler and monitor handlers get EventBridge
events, and a real worker process receives from moto SQS and signs its API calls with SigV4.

The stack's resources are created in moto from the same definitions the CDK construct uses
(`sluice_functions.config`), and the profile comes from `sluice profile create` reading a
CloudFormation stack's outputs. Operator commands and the worker use different access keys, so
every request the worker host made can be checked against the worker policy's routes.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from sluice import stack_outputs
from sluice_functions.config import (
    TTL_ATTRIBUTE,
    ControlPlaneSettings,
    pool_queue_names,
    table_key_schema,
)
from sluice_functions.embedded.gateway import LambdaContext, from_response, to_event
from sluice_functions.embedded.server import EmbeddedServer
from sluice_functions import access

from .harness import SLUICE, Process, created_id, free_port, wait_for

pytestmark = pytest.mark.e2e
PROJECT = Path(__file__).parent / "project"
REGION = "us-east-1"
STACK = "SluiceE2E"
PREFIX = "sluice-e2e"
OPERATOR_KEY, WORKER_KEY = "AKIDSLUICEOPERATOR", "AKIDSLUICEWORKER"
#: The monitor crashes runs whose heartbeat is older than this (short, for the test).
HEARTBEAT_TIMEOUT_SECONDS = 3
#: A silent attempt is crashed this long after its lease expired (orchestration.leases).
LEASE_MARGIN_SECONDS = 2
SCHEDULED_EVENT = {"version": "0", "id": "e2e", "detail-type": "Scheduled Event",
                   "source": "aws.events", "account": "123456789012", "region": REGION,
                   "resources": [], "detail": {}}
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"}


@dataclass
class Recorded:
    method: str
    path: str
    authorization: str | None


@dataclass
class Plane:
    """The control plane as the test drives it: the gateway URL and what it was asked."""

    url: str
    settings: ControlPlaneSettings
    requests: list[Recorded] = field(default_factory=list)

    def get(self, path: str, **params: Any) -> Any:
        answer = httpx.get(f"{self.url}{path}", params=params, timeout=10)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def call(self, method: str, path: str, body: Any) -> Any:
        answer = httpx.request(method, f"{self.url}{path}", json=body, timeout=10)
        assert answer.status_code < 300, answer.text
        return answer.json()

    def wait_terminal(self, run_id: str, timeout: float = 90) -> dict[str, Any]:
        def ended() -> dict[str, Any] | None:
            run = self.get(f"/flow-runs/{run_id}")
            return run if run["state"]["type"] in TERMINAL else None

        return wait_for(ended, timeout, f"run {run_id} to end", interval=0.2)

    def signed_by(self, key: str) -> list[Recorded]:
        return [r for r in self.requests
                if r.authorization and f"Credential={key}/" in r.authorization]


@pytest.fixture
def moto_endpoint():
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def aws_env(moto_endpoint, monkeypatch, tmp_path) -> dict[str, str]:
    """AWS settings pointing every boto3 client at moto; returned for the subprocesses."""
    env = {"AWS_ENDPOINT_URL": moto_endpoint, "AWS_REGION": REGION,
           "AWS_DEFAULT_REGION": REGION, "AWS_ACCESS_KEY_ID": OPERATOR_KEY,
           "AWS_SECRET_ACCESS_KEY": "operator-secret",
           "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
           "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials")}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return env


def create_stack_resources(bucket: str) -> ControlPlaneSettings:
    """What the CDK stack creates, in moto, from the shared definitions."""
    dynamodb = boto3.client("dynamodb")
    table = f"{PREFIX}-table"
    dynamodb.create_table(TableName=table, **table_key_schema())
    dynamodb.update_time_to_live(TableName=table, TimeToLiveSpecification={
        "Enabled": True, "AttributeName": TTL_ATTRIBUTE})
    sqs = boto3.client("sqs")
    queue_name, dlq_name = pool_queue_names(PREFIX, "default")
    dlq_url = sqs.create_queue(QueueName=dlq_name,
                               Attributes={"SqsManagedSseEnabled": "true"})["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    settings = ControlPlaneSettings(
        table_name=table, stack_prefix=PREFIX, queue_prefix=PREFIX, bundle_bucket=bucket,
        run_log_group=f"/{PREFIX}/flow-runs", heartbeat_timeout_seconds=HEARTBEAT_TIMEOUT_SECONDS)
    queue_url = sqs.create_queue(QueueName=queue_name, Attributes={
        "SqsManagedSseEnabled": "true",
        "VisibilityTimeout": str(settings.queue_visibility_timeout_seconds),
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn,
                                     "maxReceiveCount": settings.max_receive_count})})["QueueUrl"]
    boto3.client("logs").create_log_group(logGroupName=settings.effective_run_log_group)
    boto3.client("s3").create_bucket(Bucket=bucket)
    return settings.model_copy(update={"default_pool_queue_url": queue_url,
                                       "default_pool_dlq_url": dlq_url})


def create_cloudformation_stack(plane_url: str, settings: ControlPlaneSettings) -> None:
    """A stack whose outputs are those of the real one (the keys `sluice_infra` writes)."""
    outputs = {
        stack_outputs.API_URL: f"{plane_url}/", stack_outputs.REGION: REGION,
        stack_outputs.BUNDLE_BUCKET: settings.bundle_bucket,
        stack_outputs.WORKER_POLICY_ARN: f"arn:aws:iam::123456789012:policy/{PREFIX}-worker",
        stack_outputs.QUEUE_URLS: json.dumps({"default": settings.default_pool_queue_url}),
    }
    template = {"Resources": {"Marker": {"Type": "AWS::SNS::Topic"}},
                "Outputs": {key: {"Value": value} for key, value in outputs.items()}}
    boto3.client("cloudformation").create_stack(StackName=STACK,
                                                TemplateBody=json.dumps(template))


def lambda_entry(module: str) -> Any:
    """`handler` of a Lambda entry module, fresh (it builds its ports on its first event, from
    the environment, as in a new Lambda container)."""
    return importlib.reload(importlib.import_module(f"sluice_functions.handlers.{module}")).handler


@pytest.fixture
def plane(aws_env, monkeypatch, tmp_path):
    settings = create_stack_resources(bucket=f"{PREFIX}-bundles-{uuid.uuid4().hex[:8]}")
    for name, value in settings.to_environment().items():  # as the construct sets them
        monkeypatch.setenv(name, value)
    api_handler = lambda_entry("api")
    lock = threading.Lock()  # Powertools' resolver keeps the current event on its class

    from sluice_functions.adapters.aws import build_aws_ports

    server = EmbeddedServer(data_dir=tmp_path / "gateway", port=free_port(),
                            tick_seconds=3600,  # no timers: EventBridge's part is played below
                            ports_factory=lambda _: build_aws_ports(settings))
    plane = Plane(url="", settings=settings)

    def handle_api(method: str, path: str, headers: dict[str, str], body: bytes,
                   source_ip: str) -> tuple[int, dict[str, str], bytes]:
        lowered = {k.lower(): v for k, v in headers.items()}
        plane.requests.append(Recorded(method, path.split("?")[0], lowered.get("authorization")))
        event = to_event(method, path, headers, body, source_ip)
        with lock:
            answer = api_handler(event, LambdaContext(function_name="sluice-api",
                                                      aws_request_id=uuid.uuid4().hex))
        return from_response(answer)

    server.handle_api = handle_api  # API Gateway -> the Lambda handler, nothing in between
    server.start()
    plane.url = server.url
    create_cloudformation_stack(plane.url, settings)
    yield plane
    server.stop()


@pytest.fixture
def host_env(aws_env, tmp_path) -> dict[str, str]:
    """Environment of the CLI and worker processes: this machine's, minus any Sluice control
    plane settings, plus moto's AWS settings and a SLUICE_HOME of their own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
    return {**env, **aws_env, "SLUICE_HOME": str(tmp_path / "home"), "PYTHONUNBUFFERED": "1"}


def cli(env: dict[str, str], *args: str, timeout: float = 90) -> str:
    done = subprocess.run([*SLUICE, *args], env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, f"sluice {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_a_deployment_runs_on_aws_adapters_from_schedule_to_logs(plane, host_env, tmp_path):
    operator = {**host_env, "AWS_ACCESS_KEY_ID": OPERATOR_KEY}
    worker_env = {**host_env, "AWS_ACCESS_KEY_ID": WORKER_KEY,
                  "AWS_SECRET_ACCESS_KEY": "worker-secret"}
    # The profile comes from the stack's CloudFormation outputs.
    cli(operator, "profile", "create", "aws", "--stack", STACK, "--region", REGION, "--use")
    profiles = (tmp_path / "home" / "profiles.toml").read_text()
    assert 'kind = "aws"' in profiles and f'stack_name = "{STACK}"' in profiles

    # A worker started on the fresh stack, before any deployment, serves the default pool
    # (whose queues the stack made); then a deploy as a bundle (S3 in moto, presigned URLs).
    worker = Process([*SLUICE, "worker", "start", "--pool", "default", "--name", "aws-worker",
                      "--limit", "2", "--poll-wait", "1", "--heartbeat-interval", "0.5"],
                     worker_env, tmp_path / "worker.log")
    project = tmp_path / "project"
    shutil.copytree(PROJECT, project)
    ledger = tmp_path / "ledger"
    try:
        wait_for(lambda: "polling pool 'default'" in worker.output(), 60,
                 "the worker to serve the default pool")
        cli(operator, "deploy", "flows.py:ledger_flow", "--name", "on-aws", "--project-dir",
            str(project), "--source", "bundle", f"--param=ledger={ledger}")
        # A manual run: API -> DynamoDB + SQS -> worker -> Completed, logs in CloudWatch.
        # (It pauses long enough for the worker to heartbeat it.)
        run_id = created_id(cli(operator, "deployment", "run", "ledger-flow/on-aws",
                                "--param=n=3", "--param=pause=1.5"))
        run = plane.wait_terminal(run_id)
        assert run["state"]["type"] == "COMPLETED", (run, worker.output())
        events = boto3.client("logs").get_log_events(
            logGroupName=plane.settings.effective_run_log_group,
            logStreamName=f"flow-run/{run_id}", startFromHead=True)["events"]
        messages = [json.loads(e["message"])["message"] for e in events]
        assert any("squaring 3 numbers" in m for m in messages), messages
        assert any("stdout line from the flow" in m for m in messages), messages
        assert "squaring 3 numbers" in cli(operator, "flow-run", "logs", run_id)

        # A scheduled run: the scheduler handler, invoked as EventBridge does, creates the
        # due slot and enqueues it with a delay; the worker runs it at its time.
        anchor = (datetime.now(UTC) + timedelta(seconds=4)).replace(microsecond=0)
        plane.call("PATCH", "/deployments/ledger-flow/on-aws", {"schedules": [
            {"interval_seconds": 3600, "anchor": anchor.isoformat()}]})
        tick = lambda_entry("scheduler")(SCHEDULED_EVENT, LambdaContext("sluice-scheduler"))
        # The due slot and the next upcoming ones (held); the due one is enqueued at creation.
        assert tick["deployments"] == 1 and tick["created"] >= 2 and tick["failed"] == 0, tick
        deployment_id = plane.get("/deployments/ledger-flow/on-aws")["id"]

        def scheduled_run() -> dict[str, Any] | None:
            page = plane.get("/flow-runs", deployment_id=deployment_id, limit=50)
            due = [r for r in page["items"] if r["scheduled_at"]
                   and datetime.fromisoformat(r["scheduled_at"]) == anchor]
            return due[0] if due else None

        scheduled = wait_for(scheduled_run, 10, "the scheduled run")
        assert plane.wait_terminal(scheduled["id"])["state"]["type"] == "COMPLETED"
        assert [e for e, *_ in _ledger(ledger)].count("end") == 2
    finally:
        worker.stop()

    # A run whose worker vanished: claimed, never heartbeated; the monitor crashes it.
    cli(operator, "deploy", "flows.py:ledger_flow", "--name", "orphan", "--pool", "idle",
        "--create-pool", "--project-dir", str(project), "--source", "bundle",
        f"--param=ledger={ledger}")
    # The API created the new pool's queues under the stack's prefix (the IAM grant's scope).
    idle_queue, idle_dlq = pool_queue_names(PREFIX, "idle")
    sqs = boto3.client("sqs")
    assert plane.get("/pools/idle")["queue_url"] == sqs.get_queue_url(QueueName=idle_queue)[
        "QueueUrl"]
    sqs.get_queue_url(QueueName=idle_dlq)
    orphan = created_id(cli(operator, "deployment", "run", "ledger-flow/orphan"))
    plane.call("POST", f"/flow-runs/{orphan}/claim", {"worker": "gone-worker"})
    time.sleep(HEARTBEAT_TIMEOUT_SECONDS + LEASE_MARGIN_SECONDS + 1)
    tick = lambda_entry("monitor")(SCHEDULED_EVENT, LambdaContext("sluice-monitor"))
    assert tick["crashed"] + tick["retried"] == 1, tick
    assert plane.get(f"/flow-runs/{orphan}")["state"]["type"] == "CRASHED"

    # Every API request of the CLI and the worker host was SigV4-signed for execute-api, and
    # the worker host called only the routes the worker policy allows.
    signed = [r for r in plane.requests if r.authorization]
    for request in signed:
        assert re.match(r"AWS4-HMAC-SHA256 Credential=AKIDSLUICE\w+/\d{8}/us-east-1/"
                        r"execute-api/aws4_request, SignedHeaders=.+, Signature=[0-9a-f]{64}$",
                        request.authorization), request
    by_worker = plane.signed_by(WORKER_KEY)
    assert len(signed) == len(plane.signed_by(OPERATOR_KEY)) + len(by_worker)
    worker_calls = {(r.method, re.sub(r"/flow-runs/[^/]+", "/flow-runs/*", r.path))
                    for r in by_worker}
    # The claim starts the run and the final state rides with the last events batch: a
    # worker host needs no separate state call for a run that goes as planned.
    for route in ("/flow-runs/*/claim", "/flow-runs/*/events"):
        assert ("POST", f"/pools/default{route}") in worker_calls, worker_calls
    # One heartbeat per worker renews all its runs' leases (not one per run).
    assert any(method == "POST" and re.fullmatch(r"/pools/default/workers/[^/]+/heartbeat", path)
               for method, path in worker_calls), worker_calls
    # IAM's `*` spans "/" too, as `access.matches` does
    allowed = access.worker_requests("default")
    assert [r for r in by_worker if not access.matches(allowed, r.method, r.path)] == []


def _ledger(path: Path) -> list[tuple[str, ...]]:
    return [tuple(line.split()) for line in path.read_text().splitlines()] if path.exists() else []
