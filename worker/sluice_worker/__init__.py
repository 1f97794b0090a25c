"""The Sluice worker: runs flow runs from a work pool on your own machines."""

from __future__ import annotations

from typing import Any

__all__ = ["Worker", "run_worker"]


def __getattr__(name: str) -> Any:
    # Imported on first use: a Lambda pool's function (`lambda_pool`) never loads the polling
    # worker (boto3, standby processes), which keeps its cold start short.
    if name in __all__:
        from .lean_imports import import_httpx_without_its_cli

        import_httpx_without_its_cli()  # before the worker's modules import httpx
        from . import worker

        return getattr(worker, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
