"""The embedded control plane (`sluice server start`)."""

from .run import run_server
from .server import DEFAULT_PORT, EmbeddedServer

__all__ = ["EmbeddedServer", "run_server", "DEFAULT_PORT"]
