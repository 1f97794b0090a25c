"""`sluice events ls|tail|emit`: read the event log, follow it, emit an event."""

from __future__ import annotations

import json as jsonlib
import time
from datetime import timedelta
from typing import Annotated, Any

import typer
from rich.text import Text

from .common import ApiUrlOption, JsonOption, ProfileOption, client
from .durations import parse_duration
from .output import console, exact, print_json, short_id, table

app = typer.Typer(no_args_is_help=True, help="Sluice events (runs changing state, deployments, "
                  "pools, workers, your own): list them (ls), follow them (tail), emit one "
                  "(emit).")

NameOption = Annotated[list[str] | None, typer.Option(
    "--name", help="Only events whose name starts with this, e.g. sluice.flow-run.Failed "
    "(repeatable).")]
#: How often `tail` asks for new events.
TAIL_POLL_SECONDS = 1.0


@app.command("ls")
def list_events(
    name: NameOption = None,
    resource: Annotated[str | None, typer.Option(
        help="Only events about, or related to, this id (a run, deployment, pool, worker ...).")
    ] = None,
    since: Annotated[str | None, typer.Option(
        help="Only events of the last DURATION (90s, 10m, 1h, 2d), oldest first.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200, help="At most this many.")] = 50,
    json: JsonOption = False, profile: ProfileOption = None, api_url: ApiUrlOption = None,
) -> None:
    """List events, newest first (with --since: oldest first from then)."""
    from ..models import utcnow

    start = utcnow() - timedelta(seconds=parse_duration(since, "--since")) if since else None
    with client(profile, api_url) as api:
        page = api.list_events(since=start, names=name, resource_id=resource, limit=limit)
    if json:
        print_json(page.items)
        return
    if page.items:
        view = table(None, "occurred", "name", "resource", "payload")
        for event in page.items:
            view.add_row(exact(event.occurred), event.name, _resource_label(event.resource),
                         _payload_summary(event.payload))
        console.print(view)
    more = " (more: narrow with --name, --resource or --since)" if page.next_cursor else ""
    console.print(Text(f"{len(page.items) or 'no'} event{'s' if len(page.items) != 1 else ''}"
                       f"{more}; follow new ones: sluice events tail"))


@app.command()
def tail(
    name: NameOption = None,
    count: Annotated[int | None, typer.Option(
        min=1, help="Stop after this many events (default: follow until Ctrl-C).")] = None,
    json: JsonOption = False, profile: ProfileOption = None, api_url: ApiUrlOption = None,
) -> None:
    """Follow events as they happen (one line each; --json: one JSON document per line)."""
    from ..models import utcnow

    since = utcnow() - timedelta(seconds=2)  # a little back: the clocks may differ slightly
    seen: set[str] = set()
    shown = 0
    with client(profile, api_url) as api:
        try:
            while count is None or shown < count:
                cursor = None
                while True:
                    page = api.list_events(since=since, names=name, limit=100, cursor=cursor)
                    for event in page.items:
                        if event.id in seen:
                            continue
                        seen.add(event.id)
                        _print_event(event, json)
                        shown += 1
                        if count is not None and shown >= count:
                            return
                    cursor = page.next_cursor
                    if cursor is None:
                        break
                time.sleep(TAIL_POLL_SECONDS)
        except KeyboardInterrupt:
            return


@app.command()
def emit(
    name: Annotated[str, typer.Argument(help="The event's name, e.g. etl.file-landed (names "
                                        "starting with sluice. are the control plane's).")],
    resource: Annotated[str, typer.Option(
        help="What it is about, as KIND:ID (e.g. dataset:s3://bucket/key).")] = "cli:sluice",
    payload: Annotated[str | None, typer.Option(help="A JSON object of details.")] = None,
    json: JsonOption = False, profile: ProfileOption = None, api_url: ApiUrlOption = None,
) -> None:
    """Emit an event: automations and on-event deployments react to it as to any other."""
    from ..exceptions import ConfigurationError
    from ..models import EventDraft, EventResource, new_id, utcnow

    kind, sep, resource_id = resource.partition(":")
    if not sep or not kind or not resource_id:
        raise ConfigurationError(f"--resource {resource!r} is not KIND:ID; write e.g. "
                                 "--resource dataset:s3://bucket/key")
    try:
        details = jsonlib.loads(payload) if payload else {}
    except ValueError as error:
        raise ConfigurationError(f"--payload is not JSON ({error}); write e.g. "
                                 "--payload '{\"key\": \"a.csv\"}'") from None
    if not isinstance(details, dict):
        raise ConfigurationError("--payload must be a JSON object, e.g. '{\"key\": \"a.csv\"}'")
    draft = EventDraft(id=new_id(), name=name, occurred=utcnow(), payload=details,
                       resource=EventResource(kind=kind, id=resource_id))
    with client(profile, api_url) as api:
        api.emit_events([draft])
    if json:
        print_json(draft)
        return
    console.print(Text(f"emitted {name} ({draft.id}); see it: sluice events ls --name {name}"))


def _print_event(event: Any, as_json: bool) -> None:
    if as_json:
        typer.echo(event.model_dump_json())
        return
    line = Text(f"{exact(event.occurred)}  ").append(event.name, style="bold").append(
        f"  {_resource_label(event.resource)}  {_payload_summary(event.payload)}")
    console.print(line)


def _resource_label(resource: Any) -> str:
    shown = short_id(resource.id) if resource.kind == "flow-run" else resource.id
    return f"{resource.kind}:{shown}" + (f" ({resource.name})" if resource.name else "")


def _payload_summary(payload: dict[str, Any], width: int = 60) -> str:
    parts = [f"{k}={v}" for k, v in payload.items() if v is not None]
    text = " ".join(parts)
    return text if len(text) <= width else text[: width - 1] + "…"
