"""What every benchmark prints: the machine, the commit, and medians over repeats."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).with_name("results.json")


#: The region the moto-backed benchmarks create their stack in.
MOTO_REGION = "us-east-1"


def machine() -> dict[str, str]:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
    except Exception:
        commit = "unknown"
    return {"python": platform.python_version(), "machine": platform.machine(),
            "cpus": str(os.cpu_count()), "platform": platform.platform(terse=True),
            "commit": commit}


def median(values: list[float]) -> float:
    return statistics.median(values)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def record(section: str, figures: dict) -> None:
    """Merge this benchmark's figures into bench/results.json."""
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    data[section] = {"machine": machine(), **figures}
    RESULTS.write_text(json.dumps(data, indent=2, sort_keys=True))


def moto_stack(table_name: str) -> tuple[Any, Any]:
    """Inside `moto.mock_aws()`: the stack's table (with its TTL) and run log group, as the CDK
    construct makes them. Returns (settings, clients) for `build_aws_ports`."""
    from sluice_functions.adapters.aws import build_aws_clients
    from sluice_functions.config import TTL_ATTRIBUTE, ControlPlaneSettings, table_key_schema

    settings = ControlPlaneSettings(table_name=table_name, stack_prefix=table_name)
    clients = build_aws_clients(region_name=MOTO_REGION)
    clients.dynamodb.create_table(TableName=settings.table_name, **table_key_schema())
    clients.dynamodb.update_time_to_live(
        TableName=settings.table_name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE})
    clients.logs.create_log_group(logGroupName=settings.effective_run_log_group)
    return settings, clients
