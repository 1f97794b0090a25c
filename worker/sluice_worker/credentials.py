"""The credentials a worker works with, and those it hands its flow processes.

On the embedded server a worker holds a pool token: the operator's token, if that is what it was
given, is exchanged (offline: `sluice.tokens` derives it) for the token of its pool, so the
worker process never calls beyond its pool's routes. Each flow process gets a token for its own
run. On AWS, IAM does this: the host's role carries its pool's worker policy, and grants to
trigger deployments are IAM grants (`SluiceControlPlane.grant_trigger`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from sluice import tokens
from sluice.client import SluiceClient
from sluice.exceptions import ConfigurationError


def pool_client(client: SluiceClient, pool: str, may_trigger: Sequence[str] = ()) -> SluiceClient:
    """`client`, scoped to `pool`'s routes and (embedded) holding only `pool`'s token."""
    connection = client.connection
    grants = tuple(sorted(set(may_trigger)))
    if connection.kind == "aws" or not connection.api_token:
        if grants and connection.kind == "aws":
            raise ConfigurationError(
                "--may-trigger is for the embedded server; on AWS grant the worker's role "
                "with `SluiceControlPlane.grant_trigger(role, 'flow/name')`")
        if client.pool == pool:
            return client
        client.close()
        return SluiceClient(connection, pool=pool)
    scope = tokens.token_scope_unverified(connection.api_token)
    if scope.principal == "operator":
        token = tokens.pool_token(connection.api_token, pool, grants)
    elif scope.principal == "worker":
        if scope.pool != pool:
            raise ConfigurationError(
                f"the token is a worker token of pool {scope.pool!r}, not {pool!r}: start the "
                f"worker with --pool {scope.pool}, or make a token for {pool!r} with "
                f"`sluice pool token {pool}`")
        if not set(grants) <= set(scope.may_trigger):
            raise ConfigurationError(
                "--may-trigger goes beyond what this worker token grants: make a token with "
                f"`sluice pool token {pool} --may-trigger FLOW/NAME ...`")
        token = connection.api_token
    else:
        raise ConfigurationError("a flow run's token cannot run a worker: use the pool's "
                                 "token (`sluice pool token POOL`) or the operator's")
    client.close()
    return SluiceClient(replace(connection, api_token=token), pool=pool)


#: The worker's own credentials: never in a flow process's environment (nor in that of a standby
#: process, whose initial environment stays readable in /proc/<pid>/environ).
WORKER_CREDENTIAL_VARIABLES = ("SLUICE_API_TOKEN", "SLUICE_API_TOKEN_FILE", "SLUICE_PROFILE")


def without_worker_credentials(env: dict[str, str]) -> dict[str, str]:
    """`env` minus the worker's credentials (`WORKER_CREDENTIAL_VARIABLES`)."""
    return {key: value for key, value in env.items() if key not in WORKER_CREDENTIAL_VARIABLES}


def hide_from_flows() -> None:
    """Make this (worker) process undumpable (Linux `PR_SET_DUMPABLE` 0): flow code running as
    the same OS user can then neither read its /proc/<pid>/environ and memory (where the
    worker's token is) nor attach a debugger to it. Children start dumpable again (exec)."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4
    except (OSError, AttributeError):
        pass


def run_credentials(api_token: str | None, flow_run_id: str) -> str | None:
    """The token a flow process of `flow_run_id` gets from a worker holding `api_token`."""
    if not api_token or not api_token.startswith(tokens.POOL_TOKEN_PREFIX + "."):
        return None
    return tokens.run_token(api_token, flow_run_id)
