"""The Sluice worker: runs flow runs from a work pool on your own machines."""

from .worker import Worker, run_worker

__all__ = ["Worker", "run_worker"]
