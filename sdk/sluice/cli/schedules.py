"""`sluice deployment schedule ls|add|rm|pause|resume`: a deployment's schedules, one at a time.

A schedule is named by its number in `schedule ls` (1, 2, ...) or by its id when it has one.
Each change reads the deployment's schedules and writes them back whole (the API's update
takes the list): the others keep their ids, so their runs keep theirs and none is made twice."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from .common import ApiUrlOption, JsonOption, ProfileOption, client
from .output import console, print_json, table

app = typer.Typer(no_args_is_help=True, help="A deployment's schedules: list, add, remove, "
                                             "pause and resume one.")

DeploymentRef = Annotated[str, typer.Argument(metavar="DEPLOYMENT", help="flow/deployment or id.")]
ScheduleRef = Annotated[str, typer.Argument(metavar="SCHEDULE", help="Its number in `schedule "
                                            "ls` (1, 2, ...) or its id.")]


def _describe(schedule: Any) -> str:
    from .schedule_words import describe_schedule

    return describe_schedule(schedule, parameters=False, status=False)


@app.command("ls")
def list_schedules(deployment: DeploymentRef, json: JsonOption = False,
                   profile: ProfileOption = None, api_url: ApiUrlOption = None) -> None:
    """List a deployment's schedules, numbered, in words."""
    with client(profile, api_url) as api:
        d = api.get_deployment(deployment)
    if json:
        print_json([s.model_dump(mode="json") for s in d.schedules])
        return
    t = table(f"schedules of {d.flow_name}/{d.name}" + (" (deployment paused)" if d.paused
                                                         else ""),
              "#", "when", "id", "parameters", "status")
    for number, s in enumerate(d.schedules, start=1):
        params = ", ".join(f"{k}={v}" for k, v in s.parameters.items()) or "-"
        t.add_row(str(number), _describe(s), s.id or "-", params,
                  "active" if s.active else "[yellow]paused[/yellow]")
    console.print(t)
    if not d.schedules:
        console.print(f"no schedules; add one: sluice deployment schedule add "
                      f"{d.flow_name}/{d.name} --cron '0 2 * * *'", highlight=False)


@app.command()
def add(
    deployment: DeploymentRef,
    cron: Annotated[str | None, typer.Option(help="5-field cron, e.g. '0 2 * * *'.")] = None,
    interval: Annotated[str | None, typer.Option(help="Every N seconds, or a duration: 90s, "
                                                 "10m, 2h, 1d.")] = None,
    timezone_: Annotated[str | None, typer.Option("--timezone", help="IANA timezone, e.g. "
                                                  "Europe/Berlin (default UTC).")] = None,
    schedule_id: Annotated[str | None, typer.Option("--id", help="A name for it, to refer to "
                                                    "it later.")] = None,
    param: Annotated[list[str] | None, typer.Option(
        "--param", help="Parameter of this schedule's runs as key=value; repeatable.")] = None,
    inactive: Annotated[bool, typer.Option("--inactive", help="Add it paused.")] = False,
    profile: ProfileOption = None, api_url: ApiUrlOption = None,
) -> None:
    """Add a schedule to a deployment (its next runs appear at the next scheduler tick)."""
    from ..deployments import parse_params, schedules_from
    from ..exceptions import ConfigurationError
    from .durations import parse_duration

    if cron is None and interval is None:
        raise ConfigurationError("say when: --cron '0 2 * * *' or --interval 10m")
    seconds = None if interval is None else parse_duration(interval, "--interval")
    new = schedules_from(cron, seconds, timezone_, parse_params(param or []))[0]
    new = new.model_copy(update={"id": schedule_id, "active": not inactive})
    with client(profile, api_url) as api:
        d = api.get_deployment(deployment)
        if schedule_id is not None and any(s.id == schedule_id for s in d.schedules):
            from ..exceptions import Conflict

            raise Conflict(f"{d.flow_name}/{d.name} already has a schedule {schedule_id!r}; "
                           "pick another --id or remove it first")
        updated = _write(api, d, [*d.schedules, new])
    console.print(f"{updated.flow_name}/{updated.name}: schedule {len(updated.schedules)} added: "
                  f"{_describe(updated.schedules[-1])}", highlight=False)


@app.command("rm")
def remove(deployment: DeploymentRef, schedule: ScheduleRef,
           profile: ProfileOption = None, api_url: ApiUrlOption = None) -> None:
    """Remove a schedule; its runs not started yet are Cancelled at the next tick."""
    with client(profile, api_url) as api:
        d = api.get_deployment(deployment)
        index = _find(d, schedule)
        gone = d.schedules[index]
        _write(api, d, [s for i, s in enumerate(d.schedules) if i != index])
    console.print(f"{d.flow_name}/{d.name}: removed schedule {schedule} ({_describe(gone)})",
                  highlight=False)


def _set_active(deployment: str, schedule: str, active: bool, profile: str | None,
                api_url: str | None) -> None:
    with client(profile, api_url) as api:
        d = api.get_deployment(deployment)
        index = _find(d, schedule)
        changed = d.schedules[index].model_copy(update={"active": active})
        _write(api, d, [changed if i == index else s for i, s in enumerate(d.schedules)])
    console.print(f"{d.flow_name}/{d.name}: schedule {schedule} ({_describe(changed)}) "
                  f"{'resumed' if active else 'paused'}", highlight=False)


@app.command()
def pause(deployment: DeploymentRef, schedule: ScheduleRef,
          profile: ProfileOption = None, api_url: ApiUrlOption = None) -> None:
    """Pause one schedule: its runs not started yet are Cancelled at the next tick; the
    deployment's other schedules and hand-started runs go on."""
    _set_active(deployment, schedule, False, profile, api_url)


@app.command()
def resume(deployment: DeploymentRef, schedule: ScheduleRef,
           profile: ProfileOption = None, api_url: ApiUrlOption = None) -> None:
    """Resume a paused schedule: its next runs appear at the next scheduler tick (times it
    missed while paused do not run)."""
    _set_active(deployment, schedule, True, profile, api_url)


def _find(deployment: Any, ref: str) -> int:
    """The index of the schedule `ref` names: its number in `schedule ls`, or its id."""
    from ..exceptions import NotFound

    schedules = deployment.schedules
    for i, s in enumerate(schedules):
        if s.id is not None and s.id == ref:
            return i
    if ref.isdigit() and 1 <= int(ref) <= len(schedules):
        return int(ref) - 1
    where = f"{deployment.flow_name}/{deployment.name}"
    raise NotFound(f"{where} has no schedule {ref!r} (it has {len(schedules)}); see "
                   f"`sluice deployment schedule ls {where}`")


def _write(api: Any, deployment: Any, schedules: list[Any]) -> Any:
    from ..models import DeploymentUpdate

    return api.update_deployment(deployment.id, DeploymentUpdate(schedules=schedules))
