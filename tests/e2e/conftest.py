from __future__ import annotations

import pytest

from .harness import Sluice, free_port


@pytest.fixture
def sluice(tmp_path):
    """A fresh installation with its server running."""
    installation = Sluice(tmp_path / "home", free_port())
    installation.start_server()
    yield installation
    installation.close()
