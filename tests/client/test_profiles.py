"""Profiles and settings: explicit argument > SLUICE_* environment > active profile."""

from __future__ import annotations

import pytest

from sluice.exceptions import ConfigurationError
from sluice.profiles import (
    Profile,
    load_profiles,
    profiles_path,
    resolve_connection,
    save_profiles,
    upsert_profile,
)
from sluice.settings import get_settings


def _fresh_settings():
    get_settings.cache_clear()
    return get_settings()


def test_nothing_configured_means_no_connection():
    assert resolve_connection() is None


def test_profile_then_environment_then_argument(monkeypatch):
    upsert_profile("local", Profile(api_url="http://127.0.0.1:4300", api_token="from-profile",
                                    sqs_endpoint="http://127.0.0.1:4300/sqs"))
    upsert_profile("other", Profile(api_url="http://127.0.0.1:5000"))
    # Given only profiles, Then the active one (the first written) is used
    connection = resolve_connection()
    assert connection.api_url == "http://127.0.0.1:4300" and connection.profile == "local"
    assert connection.api_token == "from-profile" and connection.source == "profile"
    # When SLUICE_PROFILE names another, Then it wins over the active one
    monkeypatch.setenv("SLUICE_PROFILE", "other")
    assert resolve_connection(settings=_fresh_settings()).api_url == "http://127.0.0.1:5000"
    # When SLUICE_API_URL is set, Then the environment wins over every profile
    monkeypatch.setenv("SLUICE_API_URL", "http://127.0.0.1:6000/")
    env = resolve_connection(settings=_fresh_settings())
    assert env.api_url == "http://127.0.0.1:6000" and env.source == "environment"
    # When an argument is given, Then it wins over the environment
    assert resolve_connection(api_url="http://127.0.0.1:7000",
                              settings=_fresh_settings()).api_url == "http://127.0.0.1:7000"


def test_unknown_profile_names_the_known_ones():
    upsert_profile("local", Profile(api_url="http://127.0.0.1:4300"))
    with pytest.raises(ConfigurationError, match=r"'prod' is not in .*known: local"):
        resolve_connection(profile="prod")


def test_bad_profiles_file_names_the_setting():
    path = profiles_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('[profiles.local]\napi_url = "ftp://nope"\n')
    with pytest.raises(ConfigurationError, match=r"profiles\.local\.api_url"):
        load_profiles()
    path.write_text("not = [toml")
    with pytest.raises(ConfigurationError, match="not valid TOML"):
        load_profiles()


def test_round_trip_keeps_every_field_and_is_private():
    profiles = load_profiles()
    profiles.profiles["aws"] = Profile(kind="aws", api_url="https://x.execute-api.eu-west-1"
                                       ".amazonaws.com", region="eu-west-1", stack_name="Sluice",
                                       queue_urls={"default": "https://sqs/q"})
    profiles.active = "aws"
    path = save_profiles(profiles)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    again = load_profiles()
    assert again.active == "aws" and again.profiles["aws"] == profiles.profiles["aws"]
