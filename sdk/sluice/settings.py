"""Settings: `SLUICE_*` environment variables (profiles are layered under them by the client)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "SLUICE_"


class SluiceSettings(BaseSettings):
    """Every setting once; the env var is `SLUICE_<NAME>` (for example `SLUICE_HOME`)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    home: Path = Field(default_factory=lambda: Path.home() / ".sluice",
                       description="Where profiles, results and the embedded server's data live.")
    api_url: str | None = Field(default=None, description="Control-plane URL; unset = in-memory.")
    api_token: str | None = Field(default=None, description="Bearer token for the embedded server.")
    api_token_file: Path | None = Field(
        default=None, description="File holding the bearer token (instead of SLUICE_API_TOKEN).")
    profile: str | None = Field(default=None, description="Profile name in profiles.toml.")
    kind: Literal["local", "aws"] = Field(default="local",
                                          description="With SLUICE_API_URL: sign with SigV4 if aws.")
    region: str | None = Field(default=None, description="AWS region of an aws control plane.")
    sqs_endpoint: str | None = Field(default=None,
                                     description="SQS endpoint (the embedded server's) for workers.")
    ca_bundle: str | None = Field(default=None,
                                  description="PEM certificates to trust for the control plane's "
                                  "TLS (a self-signed embedded server); unset = system trust.")
    worker_pool: str | None = Field(
        default=None, description="Set by a worker for its flow processes: reach runs, "
        "deployments and bundles through this pool's routes (what a worker's credentials allow).")
    logging_level: str = Field(default="INFO", description="Level of run loggers on the console.")
    results_dir: Path | None = Field(default=None,
                                     description="Default result storage; default HOME/results.")
    tasks_refresh_cache: bool = Field(
        default=False, description="Cached tasks run anyway and overwrite their cached value "
        "(a task's own refresh_cache option wins).")

    @property
    def token(self) -> str | None:
        """SLUICE_API_TOKEN, else the content of SLUICE_API_TOKEN_FILE."""
        if self.api_token or self.api_token_file is None:
            return self.api_token
        from .exceptions import ConfigurationError

        try:
            return self.api_token_file.expanduser().read_text().strip() or None
        except OSError as exc:
            raise ConfigurationError(f"cannot read SLUICE_API_TOKEN_FILE "
                                     f"{self.api_token_file}: {exc.strerror}") from None

    @property
    def default_result_storage(self) -> Path:
        return self.results_dir or self.home / "results"


@lru_cache(maxsize=1)
def get_settings() -> SluiceSettings:
    """Settings read once per process (call `get_settings.cache_clear()` after changing env)."""
    return SluiceSettings()
