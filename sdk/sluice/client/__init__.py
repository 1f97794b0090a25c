"""The control-plane client: `get_client()` returns a `SluiceClient` for the configured control
plane (explicit arguments > `SLUICE_*` environment > active profile)."""

from __future__ import annotations

from ..exceptions import ConfigurationError
from ..profiles import Connection, resolve_connection
from .api import SluiceClient
from .transport import Unreachable


def get_client(*, api_url: str | None = None, api_token: str | None = None,
               profile: str | None = None, timeout: float = 30.0,
               pool: str | None = None) -> SluiceClient:
    """A client for the configured control plane; raises `ConfigurationError` if there is
    none (the message says how to configure one). `pool` (default: `SLUICE_WORKER_POOL`, which
    a worker sets for its flow processes) scopes it to that pool's routes."""
    from ..settings import get_settings

    connection = resolve_connection(api_url=api_url, api_token=api_token, profile=profile)
    if connection is None:
        raise ConfigurationError(
            "no control plane configured: run `sluice server start` (creates the `local` "
            "profile), set SLUICE_API_URL, or `sluice profile use NAME`"
        )
    return SluiceClient(connection, timeout=timeout, pool=pool or get_settings().worker_pool)


__all__ = ["get_client", "SluiceClient", "Connection", "Unreachable"]
