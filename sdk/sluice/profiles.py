"""Profiles: named ways to reach a control plane, kept in `SLUICE_HOME/profiles.toml`.

Which control plane a command talks to: an explicit argument beats `SLUICE_*` environment
variables, which beat the active profile.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from .exceptions import ConfigurationError
from .private_files import write_private

if TYPE_CHECKING:
    from .settings import SluiceSettings


def get_settings() -> SluiceSettings:
    """The process's settings, loaded on first use: pydantic-settings is not imported by a
    flow process waiting for its run (the worker's standby; issue 20)."""
    from .settings import get_settings as settings_of_process

    return settings_of_process()

PROFILES_FILE = "profiles.toml"
LOCAL_PROFILE = "local"


class Profile(BaseModel):
    """How to reach one control plane."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["local", "aws"] = "local"
    #: Base URL of the API ("http://127.0.0.1:4300" or the stack's API Gateway URL).
    api_url: str = Field(pattern=r"^https?://")
    #: Bearer token of an embedded server bound beyond loopback.
    api_token: str | None = None
    #: The embedded server's SQS-compatible endpoint (workers); AWS profiles use real SQS.
    sqs_endpoint: str | None = None
    region: str | None = None
    stack_name: str | None = None
    bundle_bucket: str | None = None
    queue_urls: dict[str, str] = Field(default_factory=dict)
    #: PEM certificates to trust for `api_url`'s TLS (an embedded server's self-signed
    #: certificate); unset: the system's trust store.
    ca_bundle: str | None = None


class ProfilesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    active: str | None = None
    profiles: dict[str, Profile] = Field(default_factory=dict)


def profiles_path(settings: SluiceSettings | None = None) -> Path:
    return (settings or get_settings()).home / PROFILES_FILE


def load_profiles(settings: SluiceSettings | None = None) -> ProfilesFile:
    path = profiles_path(settings)
    if not path.exists():
        return ProfilesFile()
    try:
        return ProfilesFile.model_validate(tomllib.loads(path.read_text()))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{path} is not valid TOML ({exc}); fix or delete it") from None
    except PydanticValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigurationError(f"{path} has invalid settings: {problems}") from None


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def _toml_key(key: str) -> str:
    return key if key.replace("-", "").replace("_", "").isalnum() else _toml_value(key)


def save_profiles(profiles: ProfilesFile, settings: SluiceSettings | None = None) -> Path:
    """Write the file (0600: it may hold a token). The format is flat, so no TOML writer is
    needed: strings, booleans and one inline table of queue URLs."""
    lines = [f"active = {_toml_value(profiles.active)}", ""] if profiles.active else []
    for name, profile in sorted(profiles.profiles.items()):
        lines.append(f"[profiles.{_toml_key(name)}]")
        for key, value in profile.model_dump(exclude_none=True).items():
            if value == {}:
                continue
            lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
    path = profiles_path(settings)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_private(path, "\n".join(lines))
    return path


def upsert_profile(name: str, profile: Profile, *, activate: bool = False,
                   settings: SluiceSettings | None = None) -> Path:
    profiles = load_profiles(settings)
    profiles.profiles[name] = profile
    if activate or profiles.active is None:
        profiles.active = name
    return save_profiles(profiles, settings)


@dataclass(frozen=True)
class Connection:
    """Where the client sends requests, after arguments, environment and profile are merged."""

    api_url: str
    api_token: str | None = None
    kind: Literal["local", "aws"] = "local"
    region: str | None = None
    sqs_endpoint: str | None = None
    profile: str | None = None
    source: str = "argument"
    #: PEM certificates to trust for TLS (None: the system's trust store).
    ca_bundle: str | None = None


def resolve_connection(*, api_url: str | None = None, api_token: str | None = None,
                       profile: str | None = None,
                       settings: SluiceSettings | None = None) -> Connection | None:
    """The control plane to talk to, or None when nothing is configured anywhere."""
    settings = settings or get_settings()
    if api_url:
        return Connection(api_url.rstrip("/"), api_token or settings.token,
                          settings.kind, settings.region, settings.sqs_endpoint,
                          ca_bundle=settings.ca_bundle)
    if settings.api_url and not profile:
        return Connection(settings.api_url.rstrip("/"), api_token or settings.token,
                          settings.kind, settings.region, settings.sqs_endpoint,
                          source="environment", ca_bundle=settings.ca_bundle)
    profiles = load_profiles(settings)
    name = profile or settings.profile or profiles.active
    if name is None:
        return None
    chosen = profiles.profiles.get(name)
    if chosen is None:
        known = ", ".join(sorted(profiles.profiles)) or "none yet"
        raise ConfigurationError(
            f"profile {name!r} is not in {profiles_path(settings)} (known: {known}); "
            f"run `sluice profile ls`, or `sluice server start` to create the local one"
        )
    return Connection(chosen.api_url.rstrip("/"), api_token or settings.token or
                      chosen.api_token, chosen.kind, settings.region or chosen.region,
                      settings.sqs_endpoint or chosen.sqs_endpoint, name, source="profile",
                      ca_bundle=settings.ca_bundle or chosen.ca_bundle)
