"""Fixtures of the reliability scenarios: a seeded driver and an installation (embedded server
with a 3 s heartbeat timeout, its own SLUICE_HOME, on a free port)."""

from __future__ import annotations

import os
import random
import time

import pytest

from e2e.harness import free_port

from .driver import Installation


@pytest.fixture
def seed(request) -> int:
    """SLUICE_CHAOS_SEED, or a fresh one; printed so a failure can be replayed."""
    value = int(os.environ.get("SLUICE_CHAOS_SEED") or random.SystemRandom().randrange(10**6))
    print(f"\n{request.node.name}: seed {value} (replay with SLUICE_CHAOS_SEED={value})")
    return value


@pytest.fixture
def rng(seed) -> random.Random:
    return random.Random(seed)


@pytest.fixture
def installation(tmp_path):
    """A fresh installation with its server running (fast monitor)."""
    inst = Installation(tmp_path / "home", free_port())
    inst.start_server()
    started = time.monotonic()
    yield inst
    inst.close()
    print(f"installation up for {time.monotonic() - started:.1f} s")
