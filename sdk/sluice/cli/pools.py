"""`sluice pool create|ls|inspect|token|pause|resume|delete`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import ApiUrlOption, JsonOption, ProfileOption, client
from .output import console, print_json

app = typer.Typer(no_args_is_help=True, help="Work pools: where runs wait for workers.")


@app.command()
def create(
    name: Annotated[str, typer.Argument(help="Pool name: lowercase letters, digits and - (at "
                                        "most 40; not ending -dlq).")],
    concurrency: Annotated[int | None, typer.Option(min=1, help="Most runs at once.")] = None,
    description: Annotated[str | None, typer.Option(help="Free text.")] = None,
    pool_type: Annotated[str | None, typer.Option(
        "--type", help="How its runs start: worker (hosts running `sluice worker start`), "
        "lambda (a Lambda function per run, at most 15 minutes) or fargate (an ECS Fargate "
        "task per run). Default worker; fixed once the pool exists (docs/pools.md).")] = None,
    json: JsonOption = False, profile: ProfileOption = None, api_url: ApiUrlOption = None,
) -> None:
    """Create a pool and its queue (and dead-letter queue), or change an existing one.

    On a pool that exists it changes only the settings given (the others are kept) and says
    so; with none, it changes nothing. Either way it exits 0. A pool's --type cannot change:
    asking for another one fails, naming the fix."""
    from rich.markup import escape

    from ..exceptions import NotFound
    from ..models import PoolCreate
    from ..models.names import name_problem

    from ..models import POOL_TYPES

    problem = name_problem(name, "pool")
    if problem is None and pool_type is not None and pool_type not in POOL_TYPES:
        problem = f"--type {pool_type!r} is not a pool type: use one of {', '.join(POOL_TYPES)}"
    if problem:  # before any request, like `pool token`
        from ..exceptions import ConfigurationError

        raise ConfigurationError(problem)
    with client(profile, api_url) as api:
        try:
            old = api.get_pool(name)
        except NotFound:
            old = None
        wanted = {"concurrency_limit": concurrency, "description": description}
        if old is not None:
            wanted = {k: getattr(old, k) if v is None else v for k, v in wanted.items()}
        changes = [] if old is None else [
            f"{label} {_setting(getattr(old, key), key)} -> {_setting(wanted[key], key)}"
            for key, label in (("concurrency_limit", "concurrency"),
                               ("description", "description"))
            if getattr(old, key) != wanted[key]]
        # The kept kind unless another is asked for: then the control plane refuses (409).
        kind = pool_type or (old.type if old is not None else "worker")
        if old is not None and not changes and kind == old.type:
            pool = old
        else:
            pool = api.create_pool(PoolCreate(name=name, type=kind, **wanted))
    if json:
        print_json(pool)
    elif old is None:
        shown_kind = "" if pool.type == "worker" else f"type {pool.type}, "
        console.print(f"pool [bold]{escape(pool.name)}[/bold] created ({shown_kind}queue "
                      f"{pool.queue_url})", highlight=False)
    elif changes:
        console.print(f"pool [bold]{escape(pool.name)}[/bold] exists; updated "
                      f"{escape(', '.join(changes))}", highlight=False)
    else:
        console.print(f"pool [bold]{escape(pool.name)}[/bold] exists, unchanged; --concurrency N "
                      "or --description T change it", highlight=False)


def _setting(value: object, key: str) -> str:
    if value is None:
        return "∞" if key == "concurrency_limit" else "none"
    return repr(value) if isinstance(value, str) else str(value)


@app.command("ls")
def list_pools(json: JsonOption = False, profile: ProfileOption = None,
               api_url: ApiUrlOption = None) -> None:
    """List pools: their limit, queued and running runs, dead letters and online workers."""
    from rich.text import Text

    from .output import Col, listing

    with client(profile, api_url) as api:
        pools = [api.get_pool(p.name) for p in api.list_pools()]
    if json:
        print_json(pools)
        return
    rows = []
    for p in pools:
        online = sum(1 for w in p.workers if w.online)
        rows.append([p.name, p.type, str(p.concurrency_limit or "∞"), _n(p.queue_depth),
                     _n(p.running), _n(p.dlq_depth), f"{online}/{len(p.workers)}",
                     Text("paused", style="yellow") if getattr(p, "paused", False)
                     else "active"])
    right = "right"
    console.print(listing(None, [Col("pool", "name", least=12), Col("type", drop=2),
                                 Col("limit", justify=right),
                                 Col("queued", justify=right), Col("running", justify=right),
                                 Col("dead letters", justify=right, drop=1),
                                 Col("workers online", justify=right), Col("status")], rows))


@app.command()
def inspect(name: Annotated[str, typer.Argument(help="Pool name.")], json: JsonOption = False,
            profile: ProfileOption = None, api_url: ApiUrlOption = None) -> None:
    """Show a pool: queue depth, workers and running runs."""
    from rich.text import Text

    from .output import defanged
    from .worker import workers_table

    with client(profile, api_url) as api:
        pool = api.get_pool(name)
    if json:
        print_json(pool)
        return
    console.print(Text(defanged(pool.name), style="bold").append(
        "  paused: workers' claims wait" if getattr(pool, "paused", False) else "",
        style="yellow"))
    for label, value in (("type", pool.type), ("limit", str(pool.concurrency_limit or "none")),
                         ("queued", _n(pool.queue_depth)), ("running", _n(pool.running)),
                         ("dead letters", _n(pool.dlq_depth)), ("queue", pool.queue_url or "-")):
        console.print(Text(f"{label:>12}: {defanged(value)}"))
    if pool.workers:
        console.print(workers_table(pool.workers, title="workers"))
    else:
        console.print(f"no workers have polled yet; start one with `sluice worker start "
                      f"--pool {defanged(pool.name)}`", highlight=False, markup=False)


def _n(value: int | None) -> str:
    return "-" if value is None else str(value)


@app.command()
def token(
    name: Annotated[str, typer.Argument(help="Pool name.")],
    may_trigger: Annotated[list[str] | None, typer.Option(
        "--may-trigger", help="A deployment ('flow/name') the pool's flows may start with "
        "run_deployment (repeatable).")] = None,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", dir_okay=False, help="Write the token to this file (0600) instead of "
        "printing it.")] = None,
    profile: ProfileOption = None, api_url: ApiUrlOption = None,
) -> None:
    """Print the token of one pool's workers on the embedded server.

    Derived from the operator's token in the profile: give it to a worker host as
    SLUICE_API_TOKEN_FILE. It reaches only this pool's runs, deployments and queue. On AWS,
    IAM does this (the stack's per-pool worker policies)."""
    from ..exceptions import ConfigurationError
    from ..models.names import name_problem
    from ..profiles import resolve_connection
    from ..tokens import pool_token, token_scope_unverified, trigger_grant

    problem = name_problem(name, "pool")
    if problem:
        raise ConfigurationError(problem)
    connection = resolve_connection(api_url=api_url, profile=profile)
    if connection is None or connection.kind != "local" or not connection.api_token:
        raise ConfigurationError(
            "pool tokens are for the embedded server, with its operator token in the profile "
            "(`sluice server start` writes it); on AWS attach the pool's worker policy to the "
            "worker's role instead")
    if token_scope_unverified(connection.api_token).principal != "operator":
        raise ConfigurationError("making a pool token needs the operator's token; this profile "
                                 "holds a worker's or a run's")
    grants = tuple(trigger_grant(ref) for ref in may_trigger or ())
    made = pool_token(connection.api_token, name, grants)
    if output is None:
        typer.echo(made)
        return
    from ..private_files import write_private

    write_private(output, made + "\n")
    console.print(f"worker token of pool [bold]{name}[/bold] written to {output} (0600)")


@app.command()
def pause(name: Annotated[str, typer.Argument(help="Pool name.")],
          profile: ProfileOption = None, api_url: ApiUrlOption = None) -> None:
    """Pause a pool: its workers start no new runs (they wait, Scheduled, saying why); runs
    already running finish. Schedules keep creating runs, which start on resume."""
    _set_paused(name, True, profile, api_url)


@app.command()
def resume(name: Annotated[str, typer.Argument(help="Pool name.")],
           profile: ProfileOption = None, api_url: ApiUrlOption = None) -> None:
    """Resume a paused pool: its waiting runs start as workers take them."""
    _set_paused(name, False, profile, api_url)


def _set_paused(name: str, paused: bool, profile: str | None, api_url: str | None) -> None:
    from rich.markup import escape

    with client(profile, api_url) as api:
        pool = api.update_pool(name, paused=paused)
    console.print(f"pool [bold]{escape(pool.name)}[/bold] {'paused' if paused else 'resumed'}",
                  highlight=False)


@app.command()
def delete(
    name: Annotated[str, typer.Argument(help="Pool name.")],
    force: Annotated[bool, typer.Option("--force", help="Delete even though deployments use it: "
                                        "its Scheduled runs are Cancelled (refused while runs "
                                        "of it are running).")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    profile: ProfileOption = None, api_url: ApiUrlOption = None,
) -> None:
    """Delete a pool with its queue and dead-letter queue (its past runs stay). Refused while
    deployments use it or runs of it wait or run, unless --force."""
    from rich.markup import escape

    if not yes:
        typer.confirm(f"delete pool {name} and its queues?", abort=True)
    with client(profile, api_url) as api:
        api.delete_pool(name, force=force)
    console.print(f"pool [bold]{escape(name)}[/bold] deleted", highlight=False)
