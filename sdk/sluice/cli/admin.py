"""`sluice admin status|migrate`: the stored data's schema version and its migrations.

Talks to the store itself, not the API: the embedded server's SQLite file (`--data-dir`), or a
deployed stack's DynamoDB table found through the stack's outputs (`--stack`, or the profile's
stack), with the operator's AWS credentials.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from ..exceptions import ConfigurationError, NotFound
from .common import JsonOption, ProfileOption
from .output import console, print_json

app = typer.Typer(no_args_is_help=True,
                  help="Operate the control plane's data: schema version and migrations.")

DataDirOption = Annotated[Path | None, typer.Option(
    "--data-dir", help="An embedded server's data directory (default SLUICE_HOME/server, "
    "unless the profile names a stack).")]
StackOption = Annotated[str | None, typer.Option(
    "--stack", help="A deployed stack's name (default: the profile's stack).")]
RegionOption = Annotated[str | None, typer.Option("--region", help="The stack's region.")]


@dataclass
class Target:
    """The store a command works on."""

    backend: Any
    description: str
    #: The schema version the deployed functions understand (stack output); None: the
    #: embedded server, which runs this very installation's code.
    deployed_understands: int | None = None


def _target(data_dir: Path | None, stack: str | None, region: str | None,
            profile: str | None) -> Target:
    if data_dir is None and stack is None:
        from ..profiles import load_profiles
        from ..settings import get_settings

        settings = get_settings()
        profiles = load_profiles(settings)
        chosen = profiles.profiles.get(profile or settings.profile or profiles.active or "")
        if chosen is not None and chosen.kind == "aws" and chosen.stack_name:
            stack, region = chosen.stack_name, region or chosen.region
        else:
            data_dir = settings.home / "server"
    if stack is not None:
        return _stack_target(stack, region)
    store = Path(data_dir).expanduser() / "store.db"
    if not store.exists():
        raise NotFound(f"no embedded store at {store}: pass the server's --data-dir, or "
                       "--stack for a deployed control plane")
    from sluice_functions.migrations.sqlite import SqliteMigrationBackend

    return Target(SqliteMigrationBackend(store), f"embedded store {store}")


def _stack_target(stack: str, region: str | None) -> Target:
    import boto3

    from .. import stack_outputs
    from sluice_functions.migrations.dynamo import DynamoMigrationBackend

    region, outputs = stack_outputs.read_stack_outputs(stack, region)
    table = outputs.get(stack_outputs.TABLE_NAME)
    if not table:
        raise ConfigurationError(
            f"stack {stack!r} has no output {stack_outputs.TABLE_NAME}: it runs a release "
            "before schema versions; deploy this release's stack first (cdk deploy)")
    understood = outputs.get(stack_outputs.SCHEMA_VERSION)
    client = boto3.session.Session(region_name=region).client("dynamodb")
    return Target(DynamoMigrationBackend(client, table), f"table {table} of stack {stack}",
                  int(understood) if understood and understood.isdigit() else None)


@app.command()
def status(data_dir: DataDirOption = None, stack: StackOption = None,
           region: RegionOption = None, profile: ProfileOption = None,
           json: JsonOption = False) -> None:
    """Which schema version the data is at, what this sluice understands, what is pending."""
    from sluice_functions.config import SCHEMA_VERSION
    from sluice_functions.migrations.steps import steps_between

    target = _target(data_dir, stack, region, profile)
    current = target.backend.read_status()
    pending = (steps_between(current.version, SCHEMA_VERSION)
               if current.version < SCHEMA_VERSION else [])
    answer = {
        "store": target.description, "schema_version": current.version,
        "oldest_code": current.oldest_code, "this_sluice_understands": SCHEMA_VERSION,
        "deployed_code_understands": target.deployed_understands,
        "migrating_to": current.migrating_to, "scanned": current.scanned,
        "changed": current.changed, "updated_at": current.updated_at,
        "pending": [{"from": s.from_version, "to": s.to_version, "description": s.description}
                    for s in pending],
    }
    if json:
        print_json(answer)
        return
    from rich.table import Table

    table = Table(show_header=False, box=None)
    for label, key in (("store", "store"), ("data at schema", "schema_version"),
                       ("oldest code that may run on it", "oldest_code"),
                       ("this sluice understands", "this_sluice_understands"),
                       ("deployed functions understand", "deployed_code_understands")):
        if answer[key] is not None:
            table.add_row(label, str(answer[key]))
    if current.migrating_to is not None:
        table.add_row("migration under way", f"to {current.migrating_to}: "
                      f"{current.scanned} items scanned, {current.changed} changed, last "
                      f"at {current.updated_at} (resume: sluice admin migrate)")
    for step in pending:
        table.add_row("pending", f"{step.from_version} -> {step.to_version}: {step.description}")
    if not pending and current.version >= SCHEMA_VERSION:
        table.add_row("pending", "nothing: the data is current")
    console.print(table)


@app.command()
def migrate(data_dir: DataDirOption = None, stack: StackOption = None,
            region: RegionOption = None, profile: ProfileOption = None,
            dry_run: Annotated[bool, typer.Option(
                "--dry-run", help="Count what would change; write nothing.")] = False,
            to: Annotated[int | None, typer.Option(
                "--to", min=1, help="Stop at this schema version (default: this sluice's).")
            ] = None,
            page_size: Annotated[int, typer.Option(min=1, max=1000, help="Items per page "
                                                   "(one checkpoint per page).")] = 100) -> None:
    """Migrate the data to this sluice's schema: idempotent, resumable (re-run after a stop)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
    from rich.table import Table

    from sluice_functions.config import SCHEMA_VERSION
    from sluice_functions.migrations.runner import migrate as run_migrations

    target = _target(data_dir, stack, region, profile)
    goal = to or SCHEMA_VERSION
    if target.deployed_understands is not None and goal > target.deployed_understands \
            and not dry_run:
        raise ConfigurationError(
            f"the stack's functions understand up to schema {target.deployed_understands}; "
            f"deploy this release first (cdk deploy), then migrate to {goal}")
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("changed {task.fields[changed]}"), console=console,
                  transient=True) as progress:
        tasks: dict[int, Any] = {}

        def on_page(step: Any, page: Any) -> None:
            if step.to_version not in tasks:
                tasks[step.to_version] = progress.add_task(
                    f"{step.from_version} -> {step.to_version}", total=None, changed=0)
            progress.update(tasks[step.to_version], completed=step.scanned,
                            changed=step.changed)

        try:
            report = run_migrations(target.backend, to_version=goal, dry_run=dry_run,
                                    page_size=page_size, on_page=on_page)
        except ValueError as error:
            raise ConfigurationError(str(error)) from None
    summary = Table(title=("dry run: nothing written" if dry_run else
                           f"{target.description}: schema {report.start_version} -> "
                           f"{report.end_version}"))
    for column in ("step", "description", "scanned", "changed" if not dry_run else
                   "would change", "pages", "resumed"):
        summary.add_column(column)
    for step in report.steps:
        summary.add_row(f"{step.from_version} -> {step.to_version}", step.description,
                        str(step.scanned), str(step.changed), str(step.pages),
                        "yes" if step.resumed else "no")
    if not report.steps:
        console.print(f"nothing to do: {target.description} is at schema "
                      f"{report.start_version}")
        return
    console.print(summary)
