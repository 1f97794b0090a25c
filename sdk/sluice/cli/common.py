"""Options every command shares, and the client they build."""

from __future__ import annotations

from typing import Annotated, Any

import typer

ProfileOption = Annotated[str | None, typer.Option("--profile", "-p", envvar="SLUICE_PROFILE",
                                                    help="Profile to use (see `profile ls`).")]
ApiUrlOption = Annotated[str | None, typer.Option("--api-url", help="Control-plane URL; beats "
                                                   "SLUICE_API_URL and the profile.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def client(profile: str | None = None, api_url: str | None = None) -> Any:
    from ..client import get_client

    return get_client(profile=profile, api_url=api_url)
