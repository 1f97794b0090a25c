"""Imports a worker and its flow processes make, without the parts they never use.

An idle worker is two processes (the worker and its warm standby flow process), and most of
their memory is imported code (issue 20: ~111 MiB, now under 96). httpx imports its
command-line entry point (`httpx._main`: rich, pygments and click) whenever it is imported,
about 5 MiB per process that nothing here ever calls.
"""

from __future__ import annotations

import sys


def import_httpx_without_its_cli() -> None:
    """Import httpx, skipping `httpx._main` (httpx then defines a `main` that asks for
    `httpx[cli]`). Only this first import is affected: `import httpx._main` later still works.
    Does nothing if httpx is already imported."""
    if "httpx" in sys.modules or "httpx._main" in sys.modules:
        return
    # A None entry makes `from ._main import main` raise ImportError, which httpx expects
    # (its CLI extra may be missing).
    sys.modules["httpx._main"] = None  # type: ignore[assignment]
    try:
        import httpx  # noqa: F401 - the import is the point
    finally:
        if sys.modules.get("httpx._main", 0) is None:
            del sys.modules["httpx._main"]
