"""The embedded control plane (`sluice server start`)."""

from .server import DEFAULT_PORT, EmbeddedServer, run_server

__all__ = ["EmbeddedServer", "run_server", "DEFAULT_PORT"]
