"""The IAM managed policies of worker hosts: one per pool, built from the one route table
(`sluice_functions.access`) the embedded server's tokens follow too."""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from constructs import Construct

from sluice_functions import access

from .acknowledgments import acknowledge_wildcard_resources
from .http_api import ControlPlaneApi
from .storage import PoolQueues

#: Exactly what `sluice_worker.queue.PoolQueue` calls; the queue URL comes from the API.
WORKER_QUEUE_ACTIONS = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility")


def create_worker_policy(scope: Construct, *, pool: PoolQueues,
                         api: ControlPlaneApi) -> iam.ManagedPolicy:
    """The policy of the worker hosts of `pool`: take messages from that pool's queue only (its
    exact ARN: no prefix another stack or pool could match, and not its dead-letter queue), call
    only that pool's worker routes (`access.WORKER_ROUTES`), and read this stack's outputs
    (`sluice profile create` on the host). Code bundles are downloaded through the presigned
    URL `GET /pools/{pool}/bundles/{sha256}` answers (after checking a deployment of the pool
    runs that bundle), so the policy grants no S3 access at all. Nothing an operator does (deploy,
    trigger, cancel, retry, backfill, pools) is in it; `SluiceControlPlane.grant_trigger` adds
    the deployments a pool's flows may start."""
    stack = Stack.of(scope)
    invoke = iam.PolicyStatement(actions=["execute-api:Invoke"], resources=[
        api.invoke_arn(method, path) for method, path in access.worker_requests(pool.pool)])
    policy = iam.ManagedPolicy(
        scope, f"WorkerPolicy{_logical(pool.pool)}",
        description=f"Sluice workers of pool {pool.pool} in stack {stack.stack_name}: receive "
                    "its runs, report them",
        statements=[
            iam.PolicyStatement(actions=list(WORKER_QUEUE_ACTIONS),
                                resources=[pool.queue.queue_arn]),
            invoke,
            iam.PolicyStatement(actions=["cloudformation:DescribeStacks"],
                                resources=[stack.stack_id]),
        ],
    )
    acknowledge_wildcard_resources(
        policy, invoke, "Each resource is one worker route of this pool (method and path); the "
        "wildcards stand for run, deployment and bundle ids after the pool's own path.")
    return policy


def _logical(pool: str) -> str:
    """A logical-id fragment for a pool name (`gpu-workers` -> `GpuWorkers`); "default" keeps
    the id `WorkerPolicy` had before policies were per pool, so upgrades keep its ARN."""
    if pool == "default":
        return ""
    return "".join(part.capitalize() for part in pool.split("-")) or "Pool"
