"""`FargatePool`: a pool whose runs each get an ECS Fargate task, started by a small dispatcher
function on the pool's queue (no host, no per-run task definition)."""

from __future__ import annotations

import hashlib
import shutil
import uuid
from pathlib import Path

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from sluice_worker.fargate_settings import DEFAULT_CONTAINER_NAME, dispatcher_environment

from ..acknowledgments import acknowledge, acknowledge_wildcard_resources
from ..construct import SluiceControlPlane
from ..asset import cache_root
from ..worker_wheel import WorkerWheelError, project_root, worker_wheel
from .pool_asset import pool_function_code
from .shared import PoolFunction, declare_pool_type, pool_environment

#: The dispatcher (`sluice_worker.fargate_dispatch`): claims a run, starts its task; also told
#: of stopped tasks by EventBridge.
FARGATE_DISPATCH_HANDLER = "sluice_worker.fargate_dispatch.handler"
#: A batch of ten claims and RunTask calls takes seconds; a minute leaves room for retries.
DISPATCHER_TIMEOUT = Duration.minutes(1)
DISPATCHER_MEMORY_MB = 256
DISPATCHER_BATCH_SIZE = 10
#: The default image's recipe (a Dockerfile and its `wheels/`), relative to the project root.
DEFAULT_IMAGE_RECIPE = "worker/deploy/fargate"
#: Fargate's valid task sizes: CPU units -> memory (MiB) choices:
#: https://docs.aws.amazon.com/AmazonECS/latest/developerguide/fargate-tasks-services.html
FARGATE_TASK_SIZES: dict[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4096 + 1, 1024)),
    1024: tuple(range(2048, 8192 + 1, 1024)),
    2048: tuple(range(4096, 16384 + 1, 1024)),
    4096: tuple(range(8192, 30720 + 1, 1024)),
    8192: tuple(range(16384, 61440 + 1, 4096)),
    16384: tuple(range(32768, 122880 + 1, 8192)),
}
#: EventBridge retries delivering a stopped-task event to the dispatcher this long.
STOPPED_EVENT_MAX_AGE = Duration.hours(1)


def fargate_size_problem(cpu: int, memory_mb: int) -> str | None:
    """Why (cpu, memory_mb) is not a Fargate task size, or None when it is one."""
    if cpu not in FARGATE_TASK_SIZES:
        return (f"cpu must be one of {', '.join(map(str, FARGATE_TASK_SIZES))} (CPU units, "
                f"1024 = 1 vCPU), not {cpu}")
    choices = FARGATE_TASK_SIZES[cpu]
    if memory_mb not in choices:
        return (f"memory_mb {memory_mb} does not go with cpu {cpu}: Fargate takes {choices[0]} "
                f"to {choices[-1]} MiB in steps of {choices[1] - choices[0]} for it")
    return None


def default_worker_image() -> ecs.ContainerImage:
    """The repository's recipe (`DEFAULT_IMAGE_RECIPE`) with the worker wheel this app builds
    (`worker_wheel`, as the EC2 fleet ships it) in its `wheels/`, built for arm64 by `cdk
    deploy`. Synth only prepares and fingerprints the build context: no Docker needed."""
    return ecs.ContainerImage.from_asset(str(image_build_context()),
                                         platform=ecr_assets.Platform.LINUX_ARM64)


def image_build_context(cache: Path | None = None) -> Path:
    """A directory holding the recipe and the worker wheel, cached by both (built in a private
    directory and renamed into place, so concurrent synths never see half of one)."""
    recipe = project_root() / DEFAULT_IMAGE_RECIPE
    if not (recipe / "Dockerfile").is_file():
        raise WorkerWheelError(f"the default Fargate image's recipe {recipe}/Dockerfile is "
                               "missing; pass FargatePool(image=...) or -c sluice:fargateImage")
    wheel = worker_wheel()
    digest = hashlib.sha256(wheel.sha256.encode())
    for path in sorted(recipe.rglob("*")):
        if path.is_file() and path.suffix != ".whl":
            digest.update(path.relative_to(recipe).as_posix().encode() + b"\0")
            digest.update(path.read_bytes())
    cache = cache or cache_root()
    final = cache / f"fargate-image-{digest.hexdigest()[:32]}"
    if final.is_dir():
        return final
    building = cache / f"building-image-{uuid.uuid4().hex}"
    try:
        shutil.copytree(recipe, building, ignore=shutil.ignore_patterns("*.whl"))
        (building / "wheels").mkdir(exist_ok=True)
        shutil.copy2(wheel.path, building / "wheels" / wheel.filename)
        try:
            building.rename(final)
        except OSError:  # a concurrent synth won with the same content
            if not final.is_dir():
                raise
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return final


class FargatePool(Construct):
    """Runs each run of `pool` in its own ECS Fargate task. A dispatcher function on the pool's
    queue claims the run and starts a task of the pool's one task definition (registered here,
    never per run); an EventBridge rule sends the cluster's STOPPED tasks of that definition back
    to the dispatcher, which reports a run whose task died Crashed with the stop reason.

    Networking: by default a new VPC with public subnets only and no NAT gateway (NAT costs
    about $33 a month per gateway); tasks get public IPs and a security group with no ingress
    rules. With your own `vpc`, tasks go in its private subnets with egress (a NAT or VPC
    endpoints for ECR, logs, SQS, the API) unless you pass `subnets` and `assign_public_ip`.

    The pool's queue must be one the stack creates (`extra_pools`). After deploying, create the
    pool as a Fargate pool: `sluice pool create NAME --type fargate`.

    :param image: the task's image; default: `worker/deploy/fargate/Dockerfile` with the
        worker wheel this app builds, built by `cdk deploy` (Docker is needed then, not at
        synth).
    :param cpu: task CPU units (1024 = 1 vCPU); `memory_mb`: task memory, a Fargate size.
    :param spot: start tasks on Fargate Spot (about 70% cheaper; a task may be stopped with
        two minutes' notice, and its run then ends Crashed).
    """

    def __init__(self, scope: Construct, construct_id: str, *,
                 control_plane: SluiceControlPlane, pool: str,
                 image: ecs.ContainerImage | None = None, cpu: int = 1024,
                 memory_mb: int = 2048, vpc: ec2.IVpc | None = None,
                 subnets: ec2.SubnetSelection | None = None,
                 assign_public_ip: bool | None = None, spot: bool = False) -> None:
        super().__init__(scope, construct_id)
        problem = fargate_size_problem(cpu, memory_mb)
        if problem is not None:
            raise ValueError(f"Fargate pool {pool!r}: {problem}")
        self.pool = pool
        worker_policy = control_plane.worker_policies.get(pool)
        if worker_policy is None:
            control_plane.pool_queues(pool)  # raises, naming the fix
        assert worker_policy is not None
        declare_pool_type(control_plane, pool, "fargate")
        log_retention = control_plane.log_retention
        self.vpc = vpc or self._vpc(log_retention)
        if assign_public_ip is None:
            assign_public_ip = vpc is None
        subnets = subnets or ec2.SubnetSelection(
            subnet_type=ec2.SubnetType.PUBLIC if vpc is None
            else ec2.SubnetType.PRIVATE_WITH_EGRESS)
        self.security_group = ec2.SecurityGroup(
            self, "TaskSecurityGroup", vpc=self.vpc, allow_all_outbound=True,
            description=f"Sluice Fargate pool {pool}: outbound only (the Sluice API, ECR, "
                        "package index)")
        self.cluster = ecs.Cluster(self, "Cluster", vpc=self.vpc,
                                   enable_fargate_capacity_providers=True)
        acknowledge(self.cluster, "AwsSolutions-ECS4",
                    "Container Insights bills custom metrics per cluster and task family; a "
                    "pool's tasks are one-shot runs whose state, logs and duration Sluice "
                    "records already.")
        self.log_group = logs.LogGroup(self, "TaskLogs", retention=log_retention,
                                       removal_policy=RemovalPolicy.DESTROY)
        self.task_role = iam.Role(
            self, "TaskRole", assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
            managed_policies=[worker_policy],
            description=f"Sluice Fargate pool {pool}: the run's task (pool {pool}'s worker "
                        "routes)")
        self.execution_role = iam.Role(
            self, "ExecutionRole", assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
            description=f"Sluice Fargate pool {pool}: ECS pulls the image and ships its logs")
        family = f"{control_plane.settings.stack_prefix}-{pool}"
        self.task_definition = ecs.FargateTaskDefinition(
            self, "TaskDefinition", family=family, cpu=cpu, memory_limit_mib=memory_mb,
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=ecs.CpuArchitecture.ARM64,
                operating_system_family=ecs.OperatingSystemFamily.LINUX),
            task_role=self.task_role, execution_role=self.execution_role)
        self.container = self.task_definition.add_container(
            "Sluice", container_name=DEFAULT_CONTAINER_NAME,
            image=image or default_worker_image(),
            logging=ecs.LogDrivers.aws_logs(stream_prefix=pool, log_group=self.log_group),
            environment=pool_environment(control_plane, pool))
        acknowledge(self.task_definition, "AwsSolutions-ECS2",
                    "The environment holds no secrets: the API's URL, the region, the pool's "
                    "name; credentials come from the task role, the run id and lease from "
                    "RunTask's overrides.")
        acknowledge(self.execution_role, "AwsSolutions-IAM5[Resource::*]",
                    "ecr:GetAuthorizationToken authorizes no resource (AWS requires '*'); the "
                    "pull itself is granted on the image's repository only.")

        self.dispatcher = PoolFunction(
            self, "Dispatcher", control_plane=control_plane, pool=pool,
            code=pool_function_code(), handler=FARGATE_DISPATCH_HANDLER,
            description="Fargate pool dispatcher", memory_mb=DISPATCHER_MEMORY_MB,
            timeout=DISPATCHER_TIMEOUT, batch_size=DISPATCHER_BATCH_SIZE,
            environment=dispatcher_environment(
                pool=pool, cluster=self.cluster.cluster_arn,
                task_definition=self.task_definition.task_definition_arn,
                subnets=self.vpc.select_subnets(
                    subnet_type=subnets.subnet_type, subnet_group_name=subnets.subnet_group_name,
                    subnets=subnets.subnets).subnet_ids,
                security_groups=[self.security_group.security_group_id],
                assign_public_ip=assign_public_ip,
                capacity_provider="FARGATE_SPOT" if spot else None))
        self._allow_dispatch(self.dispatcher.role)
        self.stopped_rule = self._route_stopped_tasks(family)

    def _allow_dispatch(self, role: iam.Role) -> None:
        """Start tasks of this pool's definition in this cluster, stop and describe its tasks,
        and pass this pool's two task roles to ECS: nothing else of ECS or IAM."""
        stack = Stack.of(self)
        in_cluster = {"ArnEquals": {"ecs:cluster": self.cluster.cluster_arn}}
        role.add_to_principal_policy(iam.PolicyStatement(
            actions=["ecs:RunTask"], resources=[self.task_definition.task_definition_arn],
            conditions=in_cluster))
        tasks = iam.PolicyStatement(
            actions=["ecs:StopTask", "ecs:DescribeTasks"], conditions=in_cluster,
            resources=[stack.format_arn(service="ecs", resource="task",
                                        resource_name=f"{self.cluster.cluster_name}/*")])
        role.add_to_principal_policy(tasks)
        acknowledge_wildcard_resources(
            role, tasks, "Task ids are made by ECS at RunTask; the resource is the tasks of "
            "this pool's cluster only (and the condition names the cluster).")
        role.add_to_principal_policy(iam.PolicyStatement(
            actions=["iam:PassRole"],
            resources=[self.task_role.role_arn, self.execution_role.role_arn],
            conditions={"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}))

    def _route_stopped_tasks(self, family: str) -> events.Rule:
        """STOPPED tasks of this pool's definition in this cluster -> the dispatcher."""
        definitions = Stack.of(self).format_arn(service="ecs", resource="task-definition",
                                                resource_name=f"{family}:")
        rule = events.Rule(
            self, "TaskStopped",
            description=f"Sluice Fargate pool {self.pool}: stopped tasks, to report their runs",
            event_pattern=events.EventPattern(
                source=["aws.ecs"], detail_type=["ECS Task State Change"],
                detail={"clusterArn": [self.cluster.cluster_arn],
                        "lastStatus": ["STOPPED"],
                        "taskDefinitionArn": [{"prefix": definitions}]}))
        rule.add_target(targets.LambdaFunction(
            self.dispatcher.function, retry_attempts=8, max_event_age=STOPPED_EVENT_MAX_AGE))
        return rule

    def _vpc(self, log_retention: logs.RetentionDays) -> ec2.Vpc:
        """Public subnets only, no NAT gateway; rejected traffic in flow logs (nothing should
        try to reach the tasks)."""
        flow_logs = logs.LogGroup(self, "FlowLogs", retention=log_retention,
                                  removal_policy=RemovalPolicy.DESTROY)
        return ec2.Vpc(
            self, "Vpc", max_azs=2, nat_gateways=0,
            subnet_configuration=[ec2.SubnetConfiguration(
                name="tasks", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24)],
            flow_logs={"rejected": ec2.FlowLogOptions(
                traffic_type=ec2.FlowLogTrafficType.REJECT,
                destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_logs))})

    @property
    def function(self) -> lambda_.Function:
        """The dispatcher function."""
        return self.dispatcher.function
