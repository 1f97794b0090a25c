"""What a worker starts for one run: the flow process's command, directory and environment."""

from __future__ import annotations

import json
import os
from typing import Any

from .credentials import run_credentials, without_worker_credentials
from .execute import ENV_ENTRYPOINT, ENV_FLOW_RUN, ENV_FLOW_RUN_ID, ENV_LEASE
from .sources import CodeUnavailable

#: The largest claimed run handed to the flow process in its environment (one environment
#: string may hold 128 KiB on Linux, MAX_ARG_STRLEN); a larger one is read by the process.
MAX_FLOW_RUN_ENV_BYTES = 64 * 1024


def flow_process_command(worker: Any, flow_run: dict[str, Any], *, flow_run_id: str, lease: str,
                         holder: Any, deployment: Any = None
                         ) -> tuple[list[str], str, dict[str, str]]:
    """The command, working directory and environment of the flow process of `flow_run`: its
    deployment's code fetched (pinned in the code cache for `holder`) and its credentials.
    `deployment`: the run's deployment as the claim's answer carried it (else it is read)."""
    deployment_id = flow_run.get("deployment_id")
    if not deployment_id:
        raise CodeUnavailable("the run has no deployment, so there is no code to run")
    if deployment is None or _field(deployment, "id") != deployment_id:
        deployment = worker.client.get_deployment(deployment_id)
    elif isinstance(deployment, dict):
        from sluice.models import Deployment

        deployment = Deployment.model_validate(deployment)
    # Pinned for this run (released when it ends): the cache's eviction leaves them be.
    code_dir = worker.code.directory(deployment.source, holder=holder,
                                     entrypoint=deployment.entrypoint)
    python = worker.code.python_for(code_dir, deployment.source.requirements, holder=holder)
    connection = worker.client.connection
    env = {**os.environ,
           ENV_FLOW_RUN_ID: flow_run_id, ENV_LEASE: lease,
           ENV_ENTRYPOINT: deployment.entrypoint,
           "SLUICE_API_URL": connection.api_url, "SLUICE_KIND": connection.kind,
           "PYTHONUNBUFFERED": "1",
           # Run loggers are reported by the flow process itself; its console copy
           # would come back through stderr as duplicates.
           "SLUICE_LOGGING_LEVEL": "CRITICAL"}
    # The flow process reaches its run through its pool's routes, with a token for that run
    # only (derived from the worker's pool token) - never the worker's own credentials'
    # extra rights (claims, other runs). On AWS it has the host's pool-scoped IAM role.
    env = without_worker_credentials(env)
    env["SLUICE_WORKER_POOL"] = worker.pool
    # The claimed run as the claim answered it: the flow process needs no request to read it.
    try:
        claimed = json.dumps(flow_run, separators=(",", ":"))
    except TypeError:  # not the JSON of a claim's answer (a run read as a model): not handed
        claimed = ""
    if 0 < len(claimed) <= MAX_FLOW_RUN_ENV_BYTES:
        env[ENV_FLOW_RUN] = claimed
    for key, value in (("SLUICE_API_TOKEN", run_credentials(connection.api_token, flow_run_id)),
                       ("SLUICE_REGION", connection.region),
                       ("SLUICE_CA_BUNDLE", connection.ca_bundle)):
        if value:
            env[key] = value
    return [python, "-m", "sluice_worker.execute"], str(code_dir), env


def _field(value: Any, name: str) -> Any:
    return value.get(name) if isinstance(value, dict) else getattr(value, name, None)
