"""`LambdaPool` and `FargatePool` in a synthesized stack: functions fed by their pool's queue with
partial batch failures, queues that stay invisible longer than a function runs, roles scoped to
their pool, one task definition per Fargate pool, the stopped-task rule, outbound-only security
groups, log retention, the context keys, and no cdk-nag findings.

One synth for the module: the app's context asks for two Lambda pools and a Fargate pool (with an
ECR image), and a second Fargate pool is added through the construct with the default image (its
Docker build is only referenced: synth needs no Docker)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App

from sluice_infra import FargatePool, SluiceControlPlane
from sluice_infra.app import ContextError, build_stack
from sluice_infra.pools.fargate_pool import FARGATE_DISPATCH_HANDLER, fargate_size_problem
from sluice_infra.pools.lambda_pool import LAMBDA_POOL_HANDLER
from sluice_infra.worker_wheel import worker_wheel

from .template_reading import as_list, flat, policy_of_role, refers_to

REPO = Path(__file__).resolve().parents[2]
STACK = "SluicePools"
LAMBDA_POOLS = ("etl", "quick")
FARGATE_POOLS = ("render", "video")
CONTEXT = {
    "sluice:stackName": STACK, "sluice:prefix": "pools", "sluice:logRetentionDays": "7",
    "sluice:extraPools": "video,other", "sluice:lambdaPools": ",".join(LAMBDA_POOLS),
    "sluice:fargatePools": "render",
    "sluice:fargateImage": "123456789012.dkr.ecr.us-east-1.amazonaws.com/sluice-worker:1",
    "sluice:fargateCpu": "2048", "sluice:fargateMemoryMb": "4096",
}


class Synth:
    def __init__(self, template: dict[str, Any], findings: list[tuple[str, str]],
                 manifest: dict[str, Any], control_plane: SluiceControlPlane,
                 outdir: Path) -> None:
        self.control_plane = control_plane
        self.outdir = outdir
        self.template = template
        self.findings = findings
        self.manifest = manifest

    def resources(self, type_: str) -> dict[str, dict[str, Any]]:
        return {key: value for key, value in self.template["Resources"].items()
                if value["Type"] == type_}

    def queue_of(self, pool: str) -> tuple[str, dict[str, Any]]:
        (found,) = [(key, queue) for key, queue in self.resources("AWS::SQS::Queue").items()
                    if queue["Properties"].get("QueueName") == f"pools-{pool}"]
        return found

    def function_of(self, pool: str, handler: str) -> tuple[str, dict[str, Any]]:
        (found,) = [(key, function) for key, function
                    in self.resources("AWS::Lambda::Function").items()
                    if function["Properties"]["Handler"] == handler
                    and function["Properties"]["Environment"]["Variables"]["SLUICE_POOL"] == pool]
        return found

    def worker_policy_of(self, pool: str) -> str:
        (found,) = [key for key, policy in self.resources("AWS::IAM::ManagedPolicy").items()
                    if f"of pool {pool} " in policy["Properties"]["Description"]]
        return found


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Synth:
    """Given the app with pool context keys, and a Fargate pool added with the default image."""
    from cdk_nag import AwsSolutionsChecks

    outdir = tmp_path_factory.mktemp("pools.out")
    app = App(outdir=str(outdir), context=CONTEXT)
    stack = build_stack(app)
    control_plane = stack.node.find_child("ControlPlane")
    assert isinstance(control_plane, SluiceControlPlane)
    FargatePool(stack, "Video", control_plane=control_plane, pool="video")
    assembly = app.synth()
    report = AwsSolutionsChecks().validate_scope(app)
    findings = [(violation.rule_name, resource.construct_path)
                for violation in report.violations for resource in violation.violating_resources]
    manifest = json.loads((outdir / f"{STACK}.assets.json").read_text())
    return Synth(assembly.get_stack_by_name(STACK).template, findings, manifest,
                 control_plane, outdir)


def functions_by_handler(synth: Synth, handler: str) -> dict[str, dict[str, Any]]:
    return {key: function for key, function in synth.resources("AWS::Lambda::Function").items()
            if function["Properties"]["Handler"] == handler}


def role_of(function: dict[str, Any]) -> str:
    return function["Properties"]["Role"]["Fn::GetAtt"][0]


def test_each_lambda_pool_runs_an_arm64_function_of_the_pool_handler(synth):
    runners = functions_by_handler(synth, LAMBDA_POOL_HANDLER)
    pools = sorted(f["Properties"]["Environment"]["Variables"]["SLUICE_POOL"]
                   for f in runners.values())
    assert pools == sorted(LAMBDA_POOLS)
    for function in runners.values():
        properties = function["Properties"]
        assert properties["Architectures"] == ["arm64"]
        assert properties["Runtime"] == "python3.13"
        assert properties["Timeout"] == 900
        assert properties["MemorySize"] == 1024
        variables = properties["Environment"]["Variables"]
        assert variables["SLUICE_KIND"] == "aws"
        assert "execute-api" in json.dumps(variables["SLUICE_API_URL"])


def test_every_pool_function_consumes_its_own_queue_reporting_partial_failures(synth):
    mappings = synth.resources("AWS::Lambda::EventSourceMapping").values()
    for pool, handler in [*((p, LAMBDA_POOL_HANDLER) for p in LAMBDA_POOLS),
                          *((p, FARGATE_DISPATCH_HANDLER) for p in FARGATE_POOLS)]:
        function_id, _ = synth.function_of(pool, handler)
        queue_id, _ = synth.queue_of(pool)
        (mapping,) = [m["Properties"] for m in mappings
                      if refers_to(m["Properties"]["FunctionName"], function_id)]
        assert refers_to(mapping["EventSourceArn"], queue_id)
        assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_pool_queues_stay_invisible_six_times_longer_than_their_function_runs(synth):
    for pool, handler in [*((p, LAMBDA_POOL_HANDLER) for p in LAMBDA_POOLS),
                          *((p, FARGATE_DISPATCH_HANDLER) for p in FARGATE_POOLS)]:
        _, function = synth.function_of(pool, handler)
        _, queue = synth.queue_of(pool)
        assert queue["Properties"]["VisibilityTimeout"] == 6 * function["Properties"]["Timeout"]
    # Pools of workers keep the short timeout their workers extend.
    assert synth.queue_of("other")[1]["Properties"]["VisibilityTimeout"] == 60


def test_pool_queues_declare_their_pool_s_kind_so_the_control_plane_records_it(synth):
    from sluice_functions.config import POOL_TYPE_TAG

    def kind(pool: str) -> str | None:
        tags = {t["Key"]: t["Value"] for t in synth.queue_of(pool)[1]["Properties"].get("Tags", [])}
        return tags.get(POOL_TYPE_TAG)

    assert [kind(p) for p in LAMBDA_POOLS] == ["lambda"] * len(LAMBDA_POOLS)
    assert [kind(p) for p in FARGATE_POOLS] == ["fargate"] * len(FARGATE_POOLS)
    assert kind("other") is None  # a worker pool: what an untagged queue means


def test_pool_roles_reach_only_their_own_pool(synth):
    queues = {pool: synth.queue_of(pool)[0] for pool in (*LAMBDA_POOLS, *FARGATE_POOLS,
                                                         "other", "default")}
    roles = synth.resources("AWS::IAM::Role")
    for pool, handler in [*((p, LAMBDA_POOL_HANDLER) for p in LAMBDA_POOLS),
                          *((p, FARGATE_DISPATCH_HANDLER) for p in FARGATE_POOLS)]:
        role_id = role_of(synth.function_of(pool, handler)[1])
        managed = roles[role_id]["Properties"]["ManagedPolicyArns"]
        assert [refers_to(arn, synth.worker_policy_of(pool)) for arn in managed] == [True]
        statements = policy_of_role(synth.template, role_id)
        for other, queue_id in queues.items():
            assert any(refers_to(s["Resource"], queue_id) for s in statements) == (other == pool)
        # The worker policy: of the pool routes, this pool's only (tests/infra/test_iam_matrix.py
        # checks each route).
        policy = synth.resources("AWS::IAM::ManagedPolicy")[synth.worker_policy_of(pool)]
        document = policy["Properties"]["PolicyDocument"]
        routes = [flat(resource) for statement in document["Statement"]
                  if "execute-api:Invoke" in as_list(statement["Action"])
                  for resource in as_list(statement["Resource"])]
        pools_named = {re.search(r"/pools/([^/]+)", route)[1] for route in routes
                       if "/pools/" in route}
        assert pools_named == {pool}


def test_each_fargate_pool_registers_one_arm64_task_definition(synth):
    definitions = synth.resources("AWS::ECS::TaskDefinition")
    assert sorted(d["Properties"]["Family"] for d in definitions.values()) == [
        f"pools-{pool}" for pool in FARGATE_POOLS]
    by_family = {d["Properties"]["Family"]: d["Properties"] for d in definitions.values()}
    assert (by_family["pools-render"]["Cpu"], by_family["pools-render"]["Memory"]) == (
        "2048", "4096")  # sluice:fargateCpu / sluice:fargateMemoryMb
    assert (by_family["pools-video"]["Cpu"], by_family["pools-video"]["Memory"]) == (
        "1024", "2048")  # the construct's defaults
    roles = synth.resources("AWS::IAM::Role")
    for pool in FARGATE_POOLS:
        properties = by_family[f"pools-{pool}"]
        assert properties["RuntimePlatform"]["CpuArchitecture"] == "ARM64"
        (container,) = properties["ContainerDefinitions"]
        assert container["Name"] == "sluice"
        assert container["LogConfiguration"]["LogDriver"] == "awslogs"
        task_role = properties["TaskRoleArn"]["Fn::GetAtt"][0]
        managed = roles[task_role]["Properties"]["ManagedPolicyArns"]
        assert [refers_to(arn, synth.worker_policy_of(pool)) for arn in managed] == [True]
    assert "sluice-worker:1" in json.dumps(by_family["pools-render"]["ContainerDefinitions"])


def test_the_default_image_is_the_recipe_with_this_tree_s_wheel_built_at_deploy(synth):
    (image,) = synth.manifest["dockerImages"].values()
    assert image["source"]["platform"] == "linux/arm64"
    context = synth.outdir / image["source"]["directory"]
    assert (context / "Dockerfile").read_text() == (
        REPO / "worker/deploy/fargate/Dockerfile").read_text()
    assert [wheel.name for wheel in (context / "wheels").glob("*.whl")] == [
        worker_wheel().filename]


def test_dispatchers_run_and_pass_only_their_pool_s_task_definition_and_roles(synth):
    definitions = synth.resources("AWS::ECS::TaskDefinition")
    for pool in FARGATE_POOLS:
        (definition_id, definition), = [
            (key, d) for key, d in definitions.items()
            if d["Properties"]["Family"] == f"pools-{pool}"]
        statements = policy_of_role(synth.template,
                                    role_of(synth.function_of(pool, FARGATE_DISPATCH_HANDLER)[1]))
        (run,) = [s for s in statements if "ecs:RunTask" in as_list(s["Action"])]
        assert as_list(run["Resource"]) == [{"Ref": definition_id}]
        assert "ecs:cluster" in run["Condition"]["ArnEquals"]
        (passing,) = [s for s in statements if "iam:PassRole" in as_list(s["Action"])]
        passed = {reference["Fn::GetAtt"][0] for reference in as_list(passing["Resource"])}
        properties = definition["Properties"]
        assert passed == {properties["TaskRoleArn"]["Fn::GetAtt"][0],
                          properties["ExecutionRoleArn"]["Fn::GetAtt"][0]}
        assert passing["Condition"] == {
            "StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}
        assert not any(s["Resource"] == "*" for s in statements)


def test_stopped_tasks_of_each_pool_go_to_its_dispatcher(synth):
    rules = [r["Properties"] for r in synth.resources("AWS::Events::Rule").values()
             if r["Properties"].get("EventPattern", {}).get("source") == ["aws.ecs"]]
    assert len(rules) == len(FARGATE_POOLS)
    for pool in FARGATE_POOLS:
        function_id, _ = synth.function_of(pool, FARGATE_DISPATCH_HANDLER)
        (rule,) = [r for r in rules if refers_to(r["Targets"], function_id)]
        pattern = rule["EventPattern"]
        assert pattern["detail-type"] == ["ECS Task State Change"]
        assert pattern["detail"]["lastStatus"] == ["STOPPED"]
        assert len(pattern["detail"]["clusterArn"]) == 1
        (prefix,) = pattern["detail"]["taskDefinitionArn"]
        assert flat(prefix["prefix"]).endswith(f":task-definition/pools-{pool}:")


def test_task_security_groups_have_no_ingress(synth):
    groups = {key: group for key, group in synth.resources("AWS::EC2::SecurityGroup").items()
              if "Fargate pool" in group["Properties"]["GroupDescription"]}
    assert len(groups) == len(FARGATE_POOLS)
    for group in groups.values():
        assert "SecurityGroupIngress" not in group["Properties"]
    for ingress in synth.resources("AWS::EC2::SecurityGroupIngress").values():
        assert not any(refers_to(ingress["Properties"], key) for key in groups)


def test_pool_log_groups_keep_the_stack_s_retention(synth):
    referenced = json.dumps([synth.function_of(p, LAMBDA_POOL_HANDLER)[1] for p in LAMBDA_POOLS]
                            + list(synth.resources("AWS::ECS::TaskDefinition").values()))
    pool_groups = [group for key, group in synth.resources("AWS::Logs::LogGroup").items()
                   if f'"Ref": "{key}"' in referenced]
    assert len(pool_groups) == len(LAMBDA_POOLS) + len(FARGATE_POOLS)
    for group in synth.resources("AWS::Logs::LogGroup").values():
        assert group["Properties"]["RetentionInDays"] == 7


def test_no_cdk_nag_findings(synth):
    assert synth.findings == []


@pytest.mark.parametrize(("context", "named"), [
    ({"sluice:lambdaPools": "ETL"}, "sluice:lambdaPools: pool name 'ETL'"),
    ({"sluice:lambdaPools": "a,a"}, "sluice:lambdaPools names a pool twice"),
    ({"sluice:lambdaPools": "a", "sluice:fargatePools": "b,a"}, "a pool has one kind"),
    ({"sluice:fargatePools": "a", "sluice:fargateCpu": "1000"}, "cpu must be one of"),
    ({"sluice:fargatePools": "a", "sluice:fargateMemoryMb": "1024"},
     "memory_mb 1024 does not go with cpu 1024"),
    ({"sluice:fargatePools": "a", "sluice:fargateCpu": "one"},
     "sluice:fargateCpu must be a whole number"),
    ({"sluice:fargateCpu": "2048"}, "sluice:fargatePools names no pool"),
    ({"sluice:fargatePools": "a", "sluice:fargateImage": "my image"}, "must be an image URI"),
    ({"sluice:workerFleet": "true", "sluice:workerPool": "etl", "sluice:extraPools": "etl",
      "sluice:lambdaPools": "etl"}, "two kinds of hosts"),
])
def test_bad_pool_context_is_refused_naming_the_key(context, named):
    with pytest.raises(ContextError, match=named):
        build_stack(App(context=context))


@pytest.mark.parametrize(("cpu", "memory", "ok"), [
    (256, 512, True), (1024, 2048, True), (1024, 8192, True), (1024, 9216, False),
    (8192, 20480, True), (8192, 18432, False), (300, 1024, False)])
def test_fargate_sizes_are_those_fargate_takes(cpu, memory, ok):
    assert (fargate_size_problem(cpu, memory) is None) == ok


def test_a_pool_without_a_stack_queue_is_refused_naming_extra_pools(synth):
    with pytest.raises(ValueError, match="add it to the control plane's extra_pools"):
        synth.control_plane.pool_queues("elsewhere")
