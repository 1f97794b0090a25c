"""`sluice pool create|ls|inspect`."""

from __future__ import annotations

from typing import Annotated

import typer

from .common import ApiUrlOption, JsonOption, ProfileOption, client
from .output import console, print_json, table, when

app = typer.Typer(no_args_is_help=True, help="Work pools: where runs wait for workers.")


@app.command()
def create(
    name: Annotated[str, typer.Argument(help="Pool name: lowercase letters, digits and -.")],
    concurrency: Annotated[int | None, typer.Option(min=1, help="Most runs at once.")] = None,
    description: Annotated[str | None, typer.Option(help="Free text.")] = None,
    json: JsonOption = False, profile: ProfileOption = None, api_url: ApiUrlOption = None,
) -> None:
    """Create a pool and its queue (and dead-letter queue)."""
    from ..models import PoolCreate

    with client(profile, api_url) as api:
        pool = api.create_pool(PoolCreate(name=name, concurrency_limit=concurrency,
                                          description=description))
    if json:
        print_json(pool)
    else:
        console.print(f"pool [bold]{pool.name}[/bold] ready (queue {pool.queue_url})")


@app.command("ls")
def list_pools(json: JsonOption = False, profile: ProfileOption = None,
               api_url: ApiUrlOption = None) -> None:
    """List pools."""
    with client(profile, api_url) as api:
        pools = [api.get_pool(p.name) for p in api.list_pools()]
    if json:
        print_json(pools)
        return
    t = table(None, "pool", "concurrency", "queued", "in flight", "dead letters", "workers online",
              "running")
    for p in pools:
        online = sum(1 for w in p.workers if w.online)
        t.add_row(p.name, str(p.concurrency_limit or "∞"), _n(p.queue_depth), "-",
                  _n(p.dlq_depth), f"{online}/{len(p.workers)}", _n(p.running))
    console.print(t)


@app.command()
def inspect(name: Annotated[str, typer.Argument(help="Pool name.")], json: JsonOption = False,
            profile: ProfileOption = None, api_url: ApiUrlOption = None) -> None:
    """Show a pool: queue depth, workers and running runs."""
    with client(profile, api_url) as api:
        pool = api.get_pool(name)
    if json:
        print_json(pool)
        return
    console.print(f"[bold]{pool.name}[/bold]  concurrency: {pool.concurrency_limit or '∞'}  "
                  f"queued: {_n(pool.queue_depth)}  dead letters: {_n(pool.dlq_depth)}  "
                  f"running: {_n(pool.running)}")
    console.print(f"queue: {pool.queue_url}")
    t = table("workers", "worker", "host", "slots", "version", "last seen", "status")
    for w in pool.workers:
        t.add_row(w.name, w.host or "-", str(w.slots or "-"), w.version or "-", when(w.last_seen),
                  "[green]online[/green]" if w.online else "[dim]offline[/dim]")
    console.print(t)


def _n(value: int | None) -> str:
    return "-" if value is None else str(value)
