"""`sluice automation create|ls|inspect|pause|resume|delete`: triggers and the actions they take."""

from __future__ import annotations

import json as jsonlib
from pathlib import Path
from typing import Annotated, Any

import typer

from .common import ApiUrlOption, JsonOption, ProfileOption, client
from .output import console, print_json

app = typer.Typer(no_args_is_help=True,
                  help="Automations: act on events (or on their absence).")

IdArgument = Annotated[str, typer.Argument(help="Automation id (see `sluice automation ls`).")]


def read_automation_file(path: Path) -> Any:
    """The automation described by a YAML or JSON file, as a validated `AutomationCreate`."""
    from ..exceptions import ConfigurationError
    from ..models import AutomationCreate

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc.strerror}; pass the path of an "
                                 "automation file (YAML or JSON)") from None
    if path.suffix.lower() == ".json":
        try:
            data = jsonlib.loads(text)
        except ValueError as exc:
            raise ConfigurationError(f"{path} is not valid JSON: {exc}") from None
    else:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigurationError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigurationError(f"{path} must hold one automation (a mapping with name, "
                                 "trigger and actions)")
    return AutomationCreate.model_validate(data)


@app.command()
def create(
    file: Annotated[Path, typer.Option("--file", "-f", help="Automation as YAML or JSON "
                                       "(name, trigger, actions; see docs/automations.md).")],
    json: JsonOption = False, profile: ProfileOption = None, api_url: ApiUrlOption = None,
) -> None:
    """Create an automation from a file."""
    request = read_automation_file(file)
    with client(profile, api_url) as api:
        created = api.create_automation(request)
    if json:
        print_json(created)
    else:
        console.print(f"automation [bold]{created.name}[/bold] created: {created.id}",
                      highlight=False)


@app.command("ls")
def list_automations(json: JsonOption = False, profile: ProfileOption = None,
                     api_url: ApiUrlOption = None) -> None:
    """List automations."""
    from rich.table import Table

    with client(profile, api_url) as api:
        automations = api.list_automations()
    if json:
        print_json(automations)
        return
    if not automations:
        console.print("no automations; create one with `sluice automation create --file F`")
        return
    table = Table("id", "name", "enabled", "trigger", "actions", "owner")
    for automation in automations:
        table.add_row(automation.id, automation.name, "yes" if automation.enabled else "paused",
                      automation.trigger.type,
                      ", ".join(action.type for action in automation.actions),
                      (automation.owner or "").replace(":", " ", 1))
    console.print(table)


@app.command()
def inspect(automation_id: IdArgument, profile: ProfileOption = None,
            api_url: ApiUrlOption = None) -> None:
    """Show an automation in full (JSON)."""
    with client(profile, api_url) as api:
        print_json(api.get_automation(automation_id))


@app.command()
def pause(automation_id: IdArgument, profile: ProfileOption = None,
          api_url: ApiUrlOption = None) -> None:
    """Pause an automation: it ignores events and ticks until resumed."""
    with client(profile, api_url) as api:
        automation = api.set_automation_enabled(automation_id, False)
    console.print(f"automation {automation.name} paused", highlight=False)


@app.command()
def resume(automation_id: IdArgument, profile: ProfileOption = None,
           api_url: ApiUrlOption = None) -> None:
    """Resume a paused automation (events from now on)."""
    with client(profile, api_url) as api:
        automation = api.set_automation_enabled(automation_id, True)
    console.print(f"automation {automation.name} resumed", highlight=False)


@app.command()
def delete(automation_id: IdArgument, profile: ProfileOption = None,
           api_url: ApiUrlOption = None) -> None:
    """Delete an automation."""
    with client(profile, api_url) as api:
        api.delete_automation(automation_id)
    console.print(f"automation {automation_id} deleted", highlight=False)
