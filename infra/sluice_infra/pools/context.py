"""The app's context keys of pools without hosts (`sluice:lambdaPools`, `sluice:fargatePools`,
...): read and checked before anything is created, then turned into `LambdaPool`s and
`FargatePool`s beside the control plane."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from aws_cdk import Stack
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecs as ecs

from sluice.models import DEFAULT_POOL
from sluice.models.names import name_problem

from ..construct import SluiceControlPlane

DEFAULT_FARGATE_CPU = 1024
DEFAULT_FARGATE_MEMORY_MB = 2048
POOL_CONTEXT_KEYS = {
    "sluice:lambdaPools": "comma-separated pools whose runs run in a Lambda function "
                          "(LambdaPool; docs/pools.md)",
    "sluice:fargatePools": "comma-separated pools whose runs each get an ECS Fargate task "
                           "(FargatePool; docs/pools.md)",
    "sluice:fargateImage": "the Fargate pools' image URI (default: built from "
                           "worker/deploy/fargate/Dockerfile at deploy)",
    "sluice:fargateCpu": f"the Fargate pools' task CPU units (default {DEFAULT_FARGATE_CPU})",
    "sluice:fargateMemoryMb": "the Fargate pools' task memory in MiB (default "
                              f"{DEFAULT_FARGATE_MEMORY_MB})",
}
#: A private ECR image: the execution role is granted the pull of that repository.
ECR_IMAGE = re.compile(r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com"
                       r"/(?P<repository>[a-z0-9._/-]+)(?::(?P<tag>[\w.-]+))?$")


@dataclass(frozen=True)
class PoolOptions:
    """What the pool context keys ask for."""

    lambda_pools: tuple[str, ...] = ()
    fargate_pools: tuple[str, ...] = ()
    fargate_image: str | None = None
    fargate_cpu: int = DEFAULT_FARGATE_CPU
    fargate_memory_mb: int = DEFAULT_FARGATE_MEMORY_MB
    #: The pools the stack must create queues for (the extra pools, "default" aside).
    queue_pools: tuple[str, ...] = field(default=())


def pool_options_from_context(context, *, extra_pools: list[str],  # noqa: ANN001 - app reader
                              fleet_pool: str | None, error: type[ValueError]) -> PoolOptions:
    """The pool options, checked: names, no pool of two kinds or of the worker fleet, a Fargate
    size that exists, image keys only with Fargate pools. `error` is the app's ContextError."""
    from .fargate_pool import fargate_size_problem

    lambda_pools = _pool_names(context, "sluice:lambdaPools", error)
    fargate_pools = _pool_names(context, "sluice:fargatePools", error)
    both = sorted(set(lambda_pools) & set(fargate_pools))
    if both:
        raise error(f"context sluice:lambdaPools and sluice:fargatePools both name "
                    f"{', '.join(both)}: a pool has one kind; remove it from one of them")
    if fleet_pool is not None and fleet_pool in (*lambda_pools, *fargate_pools):
        raise error(f"context sluice:workerPool {fleet_pool!r} is also a Lambda or Fargate "
                    "pool: two kinds of hosts would split its runs; give the worker fleet or "
                    "the pool another name")
    fargate_keys = ("sluice:fargateImage", "sluice:fargateCpu", "sluice:fargateMemoryMb")
    if not fargate_pools:
        given = [key for key in fargate_keys if context.raw(key) not in (None, "")]
        if given:
            raise error(f"context {', '.join(given)} set but sluice:fargatePools names no pool; "
                        "add -c sluice:fargatePools=NAME or drop them")
    image = context.text("sluice:fargateImage")
    if image is not None and (not image.strip() or any(c.isspace() for c in image)):
        raise error(f"context sluice:fargateImage must be an image URI (e.g. "
                    f"123456789012.dkr.ecr.us-east-1.amazonaws.com/sluice:1), not {image!r}")
    cpu = context.integer("sluice:fargateCpu", DEFAULT_FARGATE_CPU)
    memory = context.integer("sluice:fargateMemoryMb", DEFAULT_FARGATE_MEMORY_MB)
    problem = fargate_size_problem(cpu, memory)
    if problem is not None:
        raise error(f"context sluice:fargateCpu/sluice:fargateMemoryMb: {problem}")
    queue_pools = tuple(dict.fromkeys(
        pool for pool in (*lambda_pools, *fargate_pools)
        if pool != DEFAULT_POOL and pool not in extra_pools))
    return PoolOptions(tuple(lambda_pools), tuple(fargate_pools), image, cpu, memory,
                       queue_pools)


def add_pools(stack: Stack, control_plane: SluiceControlPlane, options: PoolOptions) -> None:
    """A `LambdaPool` and `FargatePool` per pool the options name, beside the control plane."""
    from .fargate_pool import FargatePool
    from .lambda_pool import LambdaPool

    for pool in options.lambda_pools:
        LambdaPool(stack, f"LambdaPool-{pool}", control_plane=control_plane, pool=pool)
    for pool in options.fargate_pools:
        FargatePool(stack, f"FargatePool-{pool}", control_plane=control_plane, pool=pool,
                    image=_image(stack, pool, options.fargate_image),
                    cpu=options.fargate_cpu, memory_mb=options.fargate_memory_mb)


def _image(stack: Stack, pool: str, uri: str | None) -> ecs.ContainerImage | None:
    """The image of `uri`: an ECR repository's (so its pull is granted), another registry's as
    is, or None for the default recipe."""
    if uri is None:
        return None
    found = ECR_IMAGE.match(uri)
    if found is None:
        return ecs.ContainerImage.from_registry(uri)
    repository = ecr.Repository.from_repository_arn(
        stack, f"FargateImageRepository-{pool}",
        f"arn:aws:ecr:{found['region']}:{found['account']}:repository/{found['repository']}")
    return ecs.ContainerImage.from_ecr_repository(repository, tag=found["tag"] or "latest")


def _pool_names(context, key: str, error: type[ValueError]) -> list[str]:  # noqa: ANN001
    names = context.names(key)
    for name in names:
        problem = name_problem(name, "pool")
        if problem is not None:
            raise error(f"context {key}: {problem}")
    if len(set(names)) != len(names):
        raise error(f"context {key} names a pool twice: {','.join(names)}")
    return names
