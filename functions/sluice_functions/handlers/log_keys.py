"""The run, deployment and pool a request names, as log keys: every line the API logs while
serving it carries `flow_run_id`, `deployment_id` and `pool` (those it names), so that one
Logs Insights filter finds everything about a run (`sluice_infra.log_queries`).

Read from the path (`/flow-runs/{id}`, `/pools/{pool}/...`, `/deployments/{id}`) and, for a
small JSON body, from its top-level fields of the same names.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from aws_lambda_powertools import Logger

LOG_KEYS = ("flow_run_id", "deployment_id", "pool")
#: Bodies larger than this (task-run and log batches) are not parsed for keys: their run is in
#: the path, and parsing them twice would cost every batch.
MAX_PARSED_BODY_BYTES = 16 * 1024
_PATH_KEYS = (
    ("flow_run_id", re.compile(r"/flow-runs/([^/]+)")),
    ("pool", re.compile(r"/pools/([^/]+)")),
    # `/deployments/{flow}/{name}` names a deployment by name, not by id: left out.
    ("deployment_id", re.compile(r"/deployments/([0-9a-f-]{32,36})(?:/|$)")),
)
#: Path segments that are routes, not ids (`/flow-runs/filter`, `/pools/{pool}/flow-runs`...).
_NOT_IDS = frozenset({"filter", "count", "claim", "bulk", "by-name", "search"})


def request_log_keys(event: Mapping[str, Any]) -> dict[str, str]:
    """The log keys an API Gateway (payload 2.0) event names; empty for other events."""
    keys: dict[str, str] = {}
    path = event.get("rawPath") or ""
    for key, pattern in _PATH_KEYS:
        match = pattern.search(path)
        if match and match.group(1) not in _NOT_IDS:
            keys[key] = match.group(1)
    for key, value in _body_fields(event).items():
        keys.setdefault(key, value)
    return keys


def _body_fields(event: Mapping[str, Any]) -> dict[str, str]:
    body = event.get("body")
    if not isinstance(body, str) or not body or len(body) > MAX_PARSED_BODY_BYTES:
        return {}
    try:
        text = base64.b64decode(body) if event.get("isBase64Encoded") else body
        parsed = json.loads(text)
    except (ValueError, TypeError):
        return {}
    if not isinstance(parsed, dict):
        return {}
    return {key: parsed[key] for key in LOG_KEYS
            if isinstance(parsed.get(key), str) and parsed[key]}


@contextmanager
def keys_appended(logger: Logger, keys: Mapping[str, str]) -> Iterator[None]:
    """`keys` on every line `logger` writes inside the block, removed after it (a container
    serves many requests: no key may outlive its request)."""
    logger.append_keys(**keys)
    try:
        yield
    finally:
        logger.remove_keys(list(keys))


def route_package_logs_through(logger: Logger, package: str = "sluice_functions") -> None:
    """Send the lines of `package`'s standard-library loggers through `logger`'s handler, so
    they are Powertools JSON with the request's keys too. Only in Lambda: it reconfigures the
    process's `package` logger (no longer propagating to the root)."""
    from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers

    logging.getLogger(package)  # registered, so that the copy finds it
    copy_config_to_registered_loggers(source_logger=logger, include={package})
