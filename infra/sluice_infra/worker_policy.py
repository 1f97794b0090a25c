"""The IAM managed policy of worker hosts."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from .acknowledgments import acknowledge_wildcard_resources
from .storage import BUNDLE_PREFIX

#: Exactly what `sluice_worker.queue.PoolQueue` calls; the queue URL comes from the API.
WORKER_QUEUE_ACTIONS = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility")

def create_worker_policy(scope: Construct, *, queue_pattern: str, invoke_arns: Sequence[str],
                         bundle_bucket: s3.IBucket) -> iam.ManagedPolicy:
    """The managed policy of worker hosts: take run messages from the pool queues, call only
    the API routes workers use (`routes.WORKER_REQUESTS`), read code bundles, and read this
    stack's outputs (`sluice profile create` on the host)."""
    stack = Stack.of(scope)
    statements = [
        (iam.PolicyStatement(actions=list(WORKER_QUEUE_ACTIONS), resources=[queue_pattern]),
         "Pools are created at run time, each with a queue named <stack prefix>-<pool>; "
         "workers may take messages from queues under this stack's prefix only."),
        (iam.PolicyStatement(actions=["execute-api:Invoke"], resources=list(invoke_arns)),
         "Each resource is one worker route of this API (method and path); the wildcards "
         "stand for run ids, pool names and deployment names in the path."),
        (iam.PolicyStatement(actions=["s3:GetObject"],
                             resources=[bundle_bucket.arn_for_objects(f"{BUNDLE_PREFIX}*")]),
         "Bundles are named by their SHA-256 under bundles/; workers read those objects only."),
        (iam.PolicyStatement(actions=["cloudformation:DescribeStacks"],
                             resources=[stack.stack_id]), None),
    ]
    policy = iam.ManagedPolicy(
        scope, "WorkerPolicy",
        description=f"Sluice workers of stack {stack.stack_name}: receive runs, report them, "
                    "read bundles",
        statements=[statement for statement, _ in statements],
    )
    for statement, reason in statements:
        if reason:
            acknowledge_wildcard_resources(policy, statement, reason)
    return policy
