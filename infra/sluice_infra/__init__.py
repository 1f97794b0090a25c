"""Sluice's AWS infrastructure as CDK: the `SluiceControlPlane` construct (usable in your own CDK
app) and the app that `cdk.json` runs (`sluice_infra.app`).

The CDK is imported when a construct is first asked for, so that `sluice_infra.routes` (plain
data, used by tests and tools) stays cheap to import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .capacity import Capacity
    from .construct import SluiceControlPlane
    from .http_api import Throttle
    from .pools import FargatePool, LambdaPool
    from .workers import WorkerFleet

__all__ = ["Capacity", "FargatePool", "LambdaPool", "SluiceControlPlane", "Throttle",
           "WorkerFleet"]
_HOMES = {"Capacity": "capacity", "SluiceControlPlane": "construct", "Throttle": "http_api",
          "WorkerFleet": "workers", "LambdaPool": "pools", "FargatePool": "pools"}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'sluice_infra' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f".{_HOMES[name]}", __name__), name)
