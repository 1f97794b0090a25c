"""Shared fixtures: every test gets its own SLUICE_HOME and no control plane from the env."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def isolated_sluice_home(tmp_path, monkeypatch):
    monkeypatch.setenv("SLUICE_HOME", str(tmp_path / "sluice-home"))
    for var in ("SLUICE_API_URL", "SLUICE_API_TOKEN", "SLUICE_PROFILE", "SLUICE_RESULTS_DIR"):
        monkeypatch.delenv(var, raising=False)
    from sluice.settings import get_settings

    get_settings.cache_clear()
    yield tmp_path / "sluice-home"
    get_settings.cache_clear()
