from __future__ import annotations

import pytest

from sluice import use_reporter
from sluice.reporting import InMemoryReporter


@pytest.fixture
def reporter():
    """Runs started in the test report here."""
    memory = InMemoryReporter()
    with use_reporter(memory):
        yield memory
