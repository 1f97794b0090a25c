"""The IAM matrix: principal x request x pool -> allowed or denied, evaluated on the synthesized
template's policies, for the requests the worker and the CLI really make (recorded from
`SluiceClient` calls), and for every route of the API.

Principals: the workers of each pool (the stack's per-pool managed policies), an operator
(`grant_invoke_api`), and a worker role granted to trigger one deployment (`grant_trigger`).
A request is allowed when some `execute-api:Invoke` resource matches it (IAM's `*` matches any
characters, `/` included: `access.matches` implements exactly that).
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest

from sluice.client import SluiceClient
from sluice.models import (
    BackfillRequest,
    BundleUploadRequest,
    DeploymentCreate,
    DeploymentUpdate,
    FlowRunCreate,
    HeldLease,
    PoolCreate,
    Running,
    WorkerHeartbeat,
    WorkerLeaseHeartbeat,
    new_id,
)
from sluice.profiles import Connection
from sluice_functions import access

from .conftest import FULL_STACK
from .template_reading import as_list, flat

RUN = "0190a0b1-c2d3-4e5f-8a9b-0c1d2e3f4a5b"
SHA = "ab" * 32
NOW = "2024-05-01T12:00:00+00:00"


def invoke_patterns(statements: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(method, path) of each `execute-api:Invoke` resource of a policy."""
    found = []
    for statement in statements:
        if "execute-api:Invoke" not in as_list(statement["Action"]):
            continue
        for resource in as_list(statement["Resource"]):
            text = flat(resource)
            _, _, rest = text.partition("/$default/")
            if not rest:  # the whole API (`arn_for_execute_api()` with no method or path)
                assert text.endswith("/*/*/*") or text.endswith("/*"), text
                found.append(("*", "/*"))
                continue
            method, _, path = rest.partition("/")
            found.append((method, "/" + path))
    return found


def allowed(patterns: list[tuple[str, str]], method: str, path: str) -> bool:
    if ("*", "/*") in patterns:
        return True
    return access.matches(patterns, method, path)


class Recorder:
    """A `SluiceClient` whose transport records (method, path) and answers plausibly."""

    def __init__(self, pool: str | None = None) -> None:
        self.calls: list[tuple[str, str]] = []
        transport = httpx.MockTransport(self._answer)
        self.client = SluiceClient(Connection("https://api.example"), pool=pool, attempts=1,
                                   http=httpx.Client(base_url="https://api.example",
                                                     transport=transport))

    def _answer(self, request: httpx.Request) -> httpx.Response:
        self.calls.append((request.method, request.url.path))
        path = request.url.path
        run = {"id": RUN, "flow_name": "etl", "state": {"type": "RUNNING", "timestamp": NOW}}
        if path.endswith("/claim"):
            body: Any = {"lease": "l" * 32, "flow_run": run, "lease_expires_at": NOW,
                         "lease_seconds": 30, "heartbeat_interval_seconds": 10}
        elif re.search(r"/workers/[^/]+/heartbeat$", path):
            body = {"session": "s1", "runs": {RUN: {"renewed": True}}, "lease_expires_at": NOW,
                    "lease_seconds": 30, "heartbeat_interval_seconds": 10}
        elif path.endswith("/heartbeat"):
            body = {"cancel_requested": False, "state": run["state"]}
        elif path.endswith("/state") or path.endswith("/cancel") or path.endswith("/retry"):
            body = {"status": "ACCEPT", "state": run["state"]}
        elif path.endswith("/events"):
            body = {"task_runs": 0, "logs": 0}
        elif "/bundles" in path:
            body = {"sha256": SHA, "exists": True, "download_url": "https://s3.example/b"}
        elif path.endswith("/backfill"):
            body = {"created": 0, "existing": 0, "skipped": 0, "flow_run_ids": []}
        elif re.search(r"/pools/[^/]+/workers$", path):
            body = {"name": "w1", "pool": "etl", "last_seen": NOW, "online": True}
        elif "/deployments" in path and "/runs" not in path:
            body = {"id": "d1", "flow_name": "etl", "name": "nightly", "entrypoint": "f.py:etl",
                    "pool": "etl", "created": NOW, "updated": NOW}
        elif path == "/pools" and request.method == "POST" or re.fullmatch(r"/pools/[^/]+",
                                                                               path):
            body = {"name": "etl"}
        elif path == "/health":
            body = {"status": "ok", "version": "0"}
        else:
            body = run
        return httpx.Response(200, json=body)


def worker_calls(pool: str) -> list[tuple[str, str]]:
    """What a worker of `pool` and its flow processes call (its client is pool-scoped)."""
    recorder = Recorder(pool)
    api = recorder.client
    api.health()
    api.get_pool(pool)
    api.worker_heartbeat(pool, WorkerHeartbeat(name="w1"))
    api.claim_flow_run(RUN, "w1")
    api.heartbeat(RUN, "l" * 32)
    api.worker_lease_heartbeat(pool, "w1", WorkerLeaseHeartbeat(
        session="s1", leases=[HeldLease(flow_run_id=RUN, lease="l" * 32)]))
    api.get_flow_run(RUN)
    api.get_deployment("d1")
    api.set_flow_run_state(RUN, Running(), new_id(), lease="l" * 32)
    api.send_events(RUN, b'{"task_runs": [], "logs": []}')
    api.create_flow_run(FlowRunCreate(flow_name="sub", parent_flow_run_id=RUN))
    try:
        api.download_bundle(SHA)
    except Exception:  # noqa: BLE001 - the download itself goes to S3, not the API
        pass
    return recorder.calls


def trigger_calls(deployment: str) -> list[tuple[str, str]]:
    """What `run_deployment("flow/name")` calls from inside a flow."""
    recorder = Recorder("etl")
    run = recorder.client.run_deployment(deployment)
    recorder.client.get_deployment_run(deployment, run.id)
    return recorder.calls


def _record(call: Any, *args: Any) -> None:
    """Make the request; the recorded (method, path) is what matters, not the parsed answer."""
    try:
        call(*args)
    except Exception:  # noqa: BLE001
        pass


def operator_calls() -> list[tuple[str, str]]:
    """What the CLI calls for operators' actions (deploy, trigger, cancel, retry, backfill...)."""
    recorder = Recorder()
    api = recorder.client
    for call, *args in (
        (api.create_deployment, DeploymentCreate(flow_name="etl", name="nightly",
                                                 entrypoint="flows.py:etl", pool="etl")),
        (api.update_deployment, "etl/nightly", DeploymentUpdate(paused=True)),
        (api.delete_deployment, "etl/nightly"),
        (api.run_deployment, "etl/nightly"),
        (api.cancel_flow_run, RUN), (api.retry_flow_run, RUN),
        (api.backfill_deployment, "etl/nightly", BackfillRequest(start=NOW, end=NOW)),
        (api.create_pool, PoolCreate(name="etl")),
        (api.request_bundle_upload, BundleUploadRequest(sha256=SHA, size=10)),
        (api.get_flow_run, RUN),  # an operator reads any run
        (api.get_deployment, "etl/nightly"),
        (api.list_pools,), (api.list_deployments,), (api.list_flow_runs,),
        (api.flow_run_history, RUN), (api.list_task_runs, RUN), (api.read_logs, RUN),
        (api.resolve_flow_run, RUN[-8:]), (api.delete_flow_run, RUN),
        (api.update_pool, "etl"), (api.delete_pool, "etl"),
        (api.flow_run_stats,), (api.deployment_stats,),
    ):
        _record(call, *args)
    return recorder.calls


@pytest.fixture(scope="module")
def pool_policies(synthesized) -> dict[str, list[tuple[str, str]]]:
    """{pool: invoke patterns} of the full stack's per-pool worker policies."""
    policies = {}
    for policy in synthesized.resources("AWS::IAM::ManagedPolicy", FULL_STACK).values():
        description = policy["Properties"]["Description"]
        pool = re.match(r"Sluice workers of pool (\S+) ", description).group(1)
        policies[pool] = invoke_patterns(policy["Properties"]["PolicyDocument"]["Statement"])
    assert set(policies) == {"default", "etl", "ml"}
    return policies


def test_each_pools_workers_may_make_every_request_they_make_and_no_other_pools(pool_policies):
    for pool, patterns in pool_policies.items():
        calls = worker_calls(pool)
        assert len(calls) >= 11
        assert [c for c in calls if not allowed(patterns, *c)] == [], pool
        for other, other_patterns in pool_policies.items():
            if other != pool:
                # Only the health check is common to every principal.
                crossing = [c for c in calls if allowed(other_patterns, *c)]
                assert crossing == [("GET", "/health")], (pool, other, crossing)


def test_no_worker_policy_allows_an_operator_action(pool_policies):
    calls = operator_calls()
    assert len(calls) == 23
    for pool, patterns in pool_policies.items():
        assert [c for c in calls if allowed(patterns, *c)] == [], pool
        # Nor triggering a deployment (only with an explicit grant, below).
        assert [c for c in trigger_calls("etl/nightly") if allowed(patterns, *c)] == []


def test_every_api_route_is_denied_to_workers_unless_in_their_pools_table(pool_policies,
                                                                            api_routes):
    """The whole route list of the API, each path variable filled (a pool's own name where the
    route is pool-scoped): a worker policy allows a route exactly when `access.WORKER_ROUTES`
    lists it for that pool."""
    for pool, patterns in pool_policies.items():
        for method, template in api_routes:
            for candidate_pool in ("default", "etl", "ml"):
                path = re.sub(r"\{(\w+)\}", lambda m: candidate_pool if m.group(1) == "name"
                              and template.startswith("/pools") else "x1", template)
                expected = (candidate_pool == pool or not template.startswith("/pools/")) and \
                    access.matches(access.worker_requests(pool), method, path)
                assert allowed(patterns, method, path) == expected, (pool, method, path)


@pytest.fixture(scope="module")
def api_routes() -> list[tuple[str, str]]:
    from sluice_functions.api.app import build_app
    from sluice_functions.orchestration import LeasePolicy
    from sluice_functions.ports import ControlPlanePorts

    app = build_app(ControlPlanePorts(store=None, queue=None, logs=None, metrics=None),  # type: ignore[arg-type]
                    leases=LeasePolicy.of_seconds(30))
    document = json.loads(app.get_openapi_json_schema())
    return [(method.upper(), path) for path, operations in document["paths"].items()
            for method in operations]


def test_operators_and_trigger_grants(tmp_path):
    """An operator (`grant_invoke_api`) may make every request; a role granted to trigger
    `etl/nightly` may start and watch that deployment's runs, and nothing else."""
    from aws_cdk import App, Stack
    from aws_cdk import aws_iam as iam

    from sluice_infra import SluiceControlPlane

    app = App(outdir=str(tmp_path))
    stack = Stack(app, "Grants")
    plane = SluiceControlPlane(stack, "ControlPlane", extra_pools=["etl"])
    operator = iam.Role(stack, "Operator", assumed_by=iam.AccountRootPrincipal())
    plane.grant_invoke_api(operator)
    flows = iam.Role(stack, "EtlWorkers", assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"))
    plane.grant_trigger(flows, "etl/nightly")
    template = app.synth().get_stack_by_name("Grants").template

    def role_patterns(prefix: str) -> list[tuple[str, str]]:
        (policy,) = [r for logical_id, r in template["Resources"].items()
                     if r["Type"] == "AWS::IAM::Policy" and logical_id.startswith(prefix)]
        return invoke_patterns(policy["Properties"]["PolicyDocument"]["Statement"])

    everything = operator_calls() + worker_calls("etl") + trigger_calls("etl/nightly")
    assert all(allowed(role_patterns("OperatorDefaultPolicy"), *c) for c in everything)
    granted = role_patterns("EtlWorkersDefaultPolicy")
    assert [c for c in trigger_calls("etl/nightly") if not allowed(granted, *c)] == []
    assert [c for c in trigger_calls("etl/hourly") if allowed(granted, *c)] == []
    assert [c for c in operator_calls() if allowed(granted, *c)] == [
        ("POST", "/deployments/etl/nightly/runs")]  # the CLI's `deployment run`: the grant


def test_a_fleets_trigger_grant_reaches_its_instances_role_only(synthesized, pool_policies):
    """`sluice:workerMayTrigger=etl-flow/nightly`: the fleet's role (pool etl) may start and
    watch that deployment; the pools' managed policies still may not."""
    template = synthesized.template(FULL_STACK)
    (role_id,) = [logical_id for logical_id, r in template["Resources"].items()
                  if r["Type"] == "AWS::IAM::Role" and "ec2.amazonaws.com" in json.dumps(
                      r["Properties"]["AssumeRolePolicyDocument"])]
    granted = [pattern for resource in template["Resources"].values()
               if resource["Type"] == "AWS::IAM::Policy"
               and {"Ref": role_id} in resource["Properties"]["Roles"]
               for pattern in invoke_patterns(
                   resource["Properties"]["PolicyDocument"]["Statement"])]
    assert sorted(granted) == sorted(access.trigger_requests("etl-flow/nightly"))
    assert [c for c in trigger_calls("etl-flow/nightly") if not allowed(granted, *c)] == []
    assert [c for c in trigger_calls("ml-flow/nightly") if allowed(granted, *c)] == []
    for patterns in pool_policies.values():
        assert [c for c in trigger_calls("etl-flow/nightly") if allowed(patterns, *c)] == []
