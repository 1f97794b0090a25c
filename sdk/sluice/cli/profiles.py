"""`sluice profile ls|use|show|create`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from .common import JsonOption
from .output import Col, console, listing, print_json

app = typer.Typer(no_args_is_help=True, help="Which control plane to talk to.")


@app.command("ls")
def list_profiles(json: JsonOption = False) -> None:
    """List profiles; the active one is marked."""
    from ..profiles import load_profiles, profiles_path

    profiles = load_profiles()
    if json:
        print_json({"active": profiles.active,
                    "profiles": {k: v.model_dump(mode="json", exclude={"api_token"})
                                 for k, v in profiles.profiles.items()}})
        return
    if not profiles.profiles:
        console.print("no profiles yet: `sluice server start` creates `local`")
        return
    rows = [["*" if name == profiles.active else "", name, p.kind, p.api_url, p.region or "-"]
            for name, p in sorted(profiles.profiles.items())]
    # A URL is kept whole (it is copied from here): the kind and region give way to it.
    console.print(listing(None, [Col(""), Col("profile", "name", least=10), Col("kind", drop=2),
                                 Col("api url"), Col("region", drop=1)], rows))
    console.print(Text(f"* active; stored in {profiles_path()}"))


@app.command()
def use(name: Annotated[str, typer.Argument(help="Profile to make active.")]) -> None:
    """Make a profile the active one."""
    from ..exceptions import NotFound
    from ..profiles import load_profiles, save_profiles

    profiles = load_profiles()
    if name not in profiles.profiles:
        raise NotFound(f"no profile {name!r}; known: {', '.join(sorted(profiles.profiles)) or 'none'}")
    profiles.active = name
    save_profiles(profiles)
    console.print(f"active profile: {name}")


@app.command()
def show(name: Annotated[str | None, typer.Argument(help="Profile (default: the one in "
                                                    "effect).")] = None,
         json: JsonOption = False) -> None:
    """Show the connection in effect (arguments > SLUICE_* env > active profile)."""
    from ..profiles import resolve_connection

    connection = resolve_connection(profile=name)
    if connection is None:
        console.print("no control plane configured: run `sluice server start`")
        raise typer.Exit(1)
    data = {"profile": connection.profile, "source": connection.source, "kind": connection.kind,
            "api_url": connection.api_url, "region": connection.region,
            "sqs_endpoint": connection.sqs_endpoint,
            "api_token": "set" if connection.api_token else None}
    if json:
        print_json(data)
        return
    for key, value in data.items():
        console.print(f"{key:>13}: {value if value is not None else '-'}")


@app.command()
def create(
    name: Annotated[str, typer.Argument(help="Profile name.")],
    stack: Annotated[str, typer.Option(help="CloudFormation stack of the control plane.")],
    region: Annotated[str | None, typer.Option(help="The stack's AWS region (default: "
                                               "AWS_REGION or your AWS config).")] = None,
    use: Annotated[bool, typer.Option("--use", help="Make it the active profile.")] = False,
    json: JsonOption = False,
) -> None:
    """Create (or refresh) an AWS profile from a deployed stack's outputs."""
    from ..profiles import load_profiles, upsert_profile
    from ..stack_outputs import profile_from_stack

    profile = profile_from_stack(stack, region)
    path = upsert_profile(name, profile, activate=use)
    active = load_profiles().active == name
    if json:
        print_json({"profile": name, "active": active, "path": str(path),
                    **profile.model_dump(mode="json", exclude_none=True)})
        return
    console.print(f"profile {name}: {profile.api_url} ({profile.region}, stack {stack})"
                  f"{' - active' if active else ''}; written to {path}")
