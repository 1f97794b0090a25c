"""`sluice worker run-one`: run one flow run in this process and exit, as a Fargate pool's task
does (its dispatcher passes the run, lease, pool and attempt in the environment,
`fargate_settings`). Usable by hand too: without a lease it claims the run itself."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

from .fargate_settings import ENV_ATTEMPT, ENV_FLOW_RUN_ID, ENV_LEASE, ENV_POOL
from .one_run import OneRunOutcome

#: Final state types a task may exit 0 for: the run ended as asked (a cancel is the operator's
#: choice, not the task's failure). Any other end (Failed, Crashed, TimedOut) exits 1.
SUCCESSFUL_STATE_TYPES = frozenset({"COMPLETED", "CANCELLED"})


@dataclass(frozen=True)
class RunOneResult:
    """What `sluice worker run-one` prints and exits with."""

    exit_code: int
    message: str


def result_of(outcome: OneRunOutcome) -> RunOneResult:
    """Exit 0 when the run completed (or was cancelled) or was not ours to run; 1 otherwise."""
    if not outcome.claimed:
        return RunOneResult(0, f"run {outcome.flow_run_id} was not ours to run: "
                            f"{outcome.reason}")
    code = 0 if outcome.state_type in SUCCESSFUL_STATE_TYPES else 1
    return RunOneResult(code, f"run {outcome.flow_run_id} {outcome.reason}")


def run_one_command(*, pool: str | None, flow_run_id: str | None, lease: str | None = None,
                    attempt: int | None = None, name: str | None = None,
                    profile: str | None = None, api_url: str | None = None,
                    cache_dir: Path | None = None) -> RunOneResult:
    """Run `flow_run_id` of `pool` to its end with this process's credentials scoped to the
    pool (as `sluice worker start` does) and say how to exit. Arguments left None come from
    the environment a Fargate task gets (SLUICE_POOL, SLUICE_FLOW_RUN_ID, SLUICE_LEASE,
    SLUICE_ATTEMPT)."""
    from sluice.client import get_client
    from sluice.exceptions import ConfigurationError

    from .credentials import hide_from_flows, pool_client
    from .one_run import run_one

    pool = pool or os.environ.get(ENV_POOL)
    flow_run_id = flow_run_id or os.environ.get(ENV_FLOW_RUN_ID)
    lease = lease or os.environ.get(ENV_LEASE) or None
    if attempt is None and os.environ.get(ENV_ATTEMPT):
        try:
            attempt = int(os.environ[ENV_ATTEMPT])
        except ValueError:
            raise ConfigurationError(f"{ENV_ATTEMPT}={os.environ[ENV_ATTEMPT]!r} is no "
                                     "attempt number; set it to an integer or unset it") from None
    if not pool or not flow_run_id:
        raise ConfigurationError(
            "run-one needs the run's pool and id: pass --pool and --flow-run, or set "
            f"{ENV_POOL} and {ENV_FLOW_RUN_ID}")
    hide_from_flows()
    client = pool_client(get_client(profile=profile, api_url=api_url, pool=pool), pool)
    try:
        outcome = run_one(client=client, pool=pool, flow_run_id=flow_run_id,
                          worker_name=name or f"{socket.gethostname()}-{os.getpid()}",
                          attempt=attempt, lease=lease,
                          code_cache_dir=str(cache_dir) if cache_dir else None)
    finally:
        client.close()
    return result_of(outcome)
