"""`LambdaPool`: a pool whose runs run in a Lambda function, fed by the pool's queue (no host)."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from ..construct import SluiceControlPlane
from .pool_asset import pool_function_code
from .shared import LAMBDA_MAX_TIMEOUT, PoolFunction, declare_pool_type

#: The function that runs a Lambda pool's flows (`sluice_worker.lambda_pool`).
LAMBDA_POOL_HANDLER = "sluice_worker.lambda_pool.handler"


class LambdaPool(Construct):
    """Runs the flows of `pool` in a Lambda function (arm64, 15-minute timeout), which claims
    each run of the pool's queue through an SQS event source mapping and runs it in-process, with
    the same protocol as a worker (claim, heartbeats, fencing, cancellation).

    The pool's queue must be one the stack creates (`extra_pools`); its visibility timeout is set
    to six times the function's timeout (AWS's advice for SQS event sources). Create the pool as
    a Lambda pool after deploying: `sluice pool create NAME --type lambda`.

    :param pool: the pool's name.
    :param code: the function's code; default: an asset of `sluice`, `sluice_worker` and
        `requirements`, built on this machine (no Docker).
    :param memory_mb: the function's memory (its CPU share grows with it).
    :param requirements: pip requirements the flows import, installed in the default asset.
    :param reserved_concurrency: executions reserved for the function (None: unreserved), which
        also caps the runs of the pool running at once.
    :param batch_size: runs handed to one invocation (they run one after another).
    """

    def __init__(self, scope: Construct, construct_id: str, *,
                 control_plane: SluiceControlPlane, pool: str,
                 code: lambda_.Code | None = None, memory_mb: int = 1024,
                 requirements: Sequence[str] | None = None,
                 reserved_concurrency: int | None = None, batch_size: int = 1) -> None:
        super().__init__(scope, construct_id)
        self.pool = pool
        declare_pool_type(control_plane, pool, "lambda")
        self.runner = PoolFunction(
            self, "Runner", control_plane=control_plane, pool=pool,
            code=code or pool_function_code(requirements or ()),
            handler=LAMBDA_POOL_HANDLER, description="Lambda pool runner",
            memory_mb=memory_mb, timeout=LAMBDA_MAX_TIMEOUT, batch_size=batch_size,
            reserved_concurrency=reserved_concurrency)
        #: The function that runs the flows.
        self.function: lambda_.Function = self.runner.function
        #: Its role: the pool's worker policy and its own log group, nothing else.
        self.role: iam.Role = self.runner.role
