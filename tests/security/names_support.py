"""The control-plane API on real SQLite adapters, every write recorded (as in
`tests/functions/api`), for the name, path and secret-reference attacks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from functions.api.conftest import Api, Clock, close_ports, sqlite_ports
from sluice_functions.adapters.memory_metrics import InMemoryMetrics
from sluice_functions.api import build_app

#: A deployment body that the API accepts; attacks change one field of it.
GOOD_DEPLOYMENT = {"flow_name": "etl", "name": "nightly", "entrypoint": "flows/etl.py:etl",
                   "pool": "etl"}


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    writes: list[str] = []
    metrics = InMemoryMetrics()
    clock = Clock()
    ports = sqlite_ports(tmp_path, writes, metrics)
    yield Api(app=build_app(ports, clock=clock), ports=ports, metrics=metrics, clock=clock,
              writes=writes)
    close_ports(ports)
