"""The engine: runs flows and tasks in this process and reports them."""

from .flow_engine import run_flow
from .reporters import local_reporter, use_reporter

__all__ = ["run_flow", "use_reporter", "local_reporter"]
