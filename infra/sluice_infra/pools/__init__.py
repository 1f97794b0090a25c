"""Pools without worker hosts: `LambdaPool` (runs in a Lambda function) and `FargatePool` (one
ECS Fargate task per run), each fed by its pool's queue (docs/pools.md)."""

from __future__ import annotations

from .fargate_pool import FargatePool
from .lambda_pool import LambdaPool

__all__ = ["FargatePool", "LambdaPool"]
