"""`sluice deploy` and `sluice deployment ls|inspect|run|pause|resume|delete|backfill` (and
`deployment schedule ...`, in `schedules`)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated

import typer

from . import schedules
from .common import ApiUrlOption, JsonOption, ProfileOption, client
from .output import console, errors, print_json, styled_state
from .watching import watch_run

app = typer.Typer(no_args_is_help=True, help="Deployments: flows registered for workers.")
app.add_typer(schedules.app, name="schedule")

ParamOption = Annotated[list[str] | None, typer.Option(
    "--param", help="Parameter as key=value (value read as JSON if it parses); repeatable.")]


def deploy(
    target: Annotated[str, typer.Argument(metavar="PATH:FLOW",
                                          help="Flow to deploy, e.g. flows/etl.py:orders_etl.")],
    name: Annotated[str, typer.Option("--name", "-n", help="Deployment name.")],
    pool: Annotated[str, typer.Option(help="Work pool whose workers run it.")] = "default",
    param: ParamOption = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="Tag; repeatable.")] = None,
    source: Annotated[str, typer.Option(help="Where workers get the code: local | git | "
                                        "bundle.")] = "local",
    repository: Annotated[str | None, typer.Option(help="git: repository URL.")] = None,
    ref: Annotated[str | None, typer.Option(help="git: branch, tag or commit.")] = None,
    subdirectory: Annotated[str | None, typer.Option(help="git: project directory inside "
                                                     "the repository.")] = None,
    requirements: Annotated[str | None, typer.Option(help="requirements.txt (relative to the "
                                                     "project) installed in a cached venv.")]
    = None,
    cron: Annotated[str | None, typer.Option(help="5-field cron, e.g. '0 2 * * *'.")] = None,
    interval: Annotated[float | None, typer.Option(help="Run every N seconds.")] = None,
    timezone_: Annotated[str | None, typer.Option("--timezone", help="IANA timezone of the "
                                                  "schedule, e.g. Europe/Berlin.")] = None,
    description: Annotated[str | None, typer.Option(help="Free text.")] = None,
    version: Annotated[str | None, typer.Option(help="Free text, e.g. a git sha.")] = None,
    concurrency_limit: Annotated[int | None, typer.Option(min=1, help="Most runs at once.")]
    = None,
    collision_strategy: Annotated[str, typer.Option(help="Over the limit: enqueue | "
                                                    "cancel_new.")] = "enqueue",
    retries: Annotated[int | None, typer.Option(min=0, help="Crash/failure retries by the "
                                                "control plane (default: the flow's).")] = None,
    timeout: Annotated[float | None, typer.Option(
        "--timeout", min=0.001, help="Longest a run may take, in seconds (default: the flow's "
        "timeout_seconds). A lambda pool refuses more than 870 s.")] = None,
    paused: Annotated[bool, typer.Option(help="Create paused (no scheduled runs).")] = False,
    project_dir: Annotated[Path, typer.Option(help="Project root (bundle contents, local "
                                              "path).")] = Path("."),
    dry_run: Annotated[bool, typer.Option("--dry-run", help="With --source bundle: list the "
                                          "files the bundle would hold and what the default "
                                          "exclusions leave out; upload and register "
                                          "nothing.")] = False,
    on_event: Annotated[str | None, typer.Option(
        "--on-event", help="Start a run per event matching this EventBridge pattern (JSON); "
        "--param values like '{{ event.detail.object.key }}' are rendered per event.")] = None,
    create_pool: Annotated[bool, typer.Option("--create-pool", help="Create --pool if it does "
                                              "not exist (else an unknown pool is refused).")]
    = False,
    json: JsonOption = False, profile: ProfileOption = None, api_url: ApiUrlOption = None,
) -> None:
    """Register a flow as a deployment that workers of a pool run."""
    from ..deployments import deployment_request, parse_params, schedules_from
    from ..entrypoints import load_flow, split_entrypoint
    from ..exceptions import ConfigurationError
    from ..models import CodeSource, SourceKind

    root = project_dir.resolve()
    location, _ = split_entrypoint(target)
    try:
        flow = load_flow(target, root if not Path(location).is_absolute() else None)
    except SyntaxError as exc:  # the user's file: say where, not our traceback
        raise ConfigurationError(
            f"{exc.filename or location}:{exc.lineno}: {exc.msg}; fix the file and deploy "
            "again") from exc
    except ImportError as exc:
        missing = f" (pip install {exc.name.split('.')[0]} in this environment, or fix the " \
            "import)" if isinstance(exc, ModuleNotFoundError) and exc.name else \
            " (fix the import)"
        raise ConfigurationError(f"importing {location} failed: {exc}{missing}") from exc
    if location.endswith(".py"):
        file = (root / location).resolve()
        if not file.is_relative_to(root):
            raise ConfigurationError(f"{location} is outside the project directory {root}; "
                                     "pass --project-dir")
        target = f"{file.relative_to(root).as_posix()}:{target.rpartition(':')[2]}"
    plan = None
    if source == "bundle":
        from ..bundles import pack, plan_bundle

        plan = plan_bundle(root)  # refuses symlinks that leave the project
        if location.endswith(".py"):
            plan.require(target.rpartition(":")[0])  # the entrypoint must ship
    if dry_run:
        if plan is None:
            raise ConfigurationError("--dry-run shows what a bundle would hold: use it with "
                                     "--source bundle")
        data, digest, _ = pack(plan)
        # Checked like a real deploy (names, parameters), but nothing is sent.
        deployment_request(
            flow, name=name, entrypoint=target, pool=pool,
            source=CodeSource(kind=SourceKind.BUNDLE, bundle_sha256=digest,
                              requirements=requirements),
            parameters=parse_params(param or []), tags=tag, description=description,
            version=version, schedules=schedules_from(cron, interval, timezone_), paused=paused,
            concurrency_limit=concurrency_limit, collision_strategy=collision_strategy,
            retries=retries, on_event=on_event, timeout_seconds=timeout)
        from .bundle_plan import show_bundle_plan

        show_bundle_plan(plan, zip_bytes=len(data), sha256=digest, as_json=json)
        return
    with client(profile, api_url) as api:
        if not create_pool:
            _require_pool(api, pool)
        if source == "local":
            code = CodeSource(kind=SourceKind.LOCAL, path=str(root), requirements=requirements)
        elif source == "git":
            if not repository:
                raise ConfigurationError("--source git needs --repository URL (and --ref)")
            code = CodeSource(kind=SourceKind.GIT, repository=repository, ref=ref,
                              subdirectory=subdirectory, requirements=requirements)
        elif source == "bundle":
            from ..bundles import upload_planned

            assert plan is not None
            code = upload_planned(api, plan, requirements=requirements)
        else:
            raise ConfigurationError(f"--source {source!r}: use local, git or bundle")
        request = deployment_request(
            flow, name=name, entrypoint=target, source=code, pool=pool,
            parameters=parse_params(param or []), tags=tag, description=description,
            version=version, schedules=schedules_from(cron, interval, timezone_), paused=paused,
            concurrency_limit=concurrency_limit, collision_strategy=collision_strategy,
            retries=retries, on_event=on_event, timeout_seconds=timeout)
        deployment = api.create_deployment(request)
    if plan is not None and plan.secret_exclusions:
        from .bundle_plan import shown

        left_out = ", ".join(shown(e.path) for e in plan.secret_exclusions[:5])
        more = len(plan.secret_exclusions) - 5
        errors.print(f"note: secret-looking files were left out of the bundle: {left_out}"
                     f"{f' and {more} more' if more > 0 else ''} (see --dry-run; `!pattern` in "
                     ".sluiceignore ships one)", markup=False, highlight=False)
    if json:
        print_json(deployment)
        return
    console.print(f"deployed [bold]{deployment.flow_name}/{deployment.name}[/bold] "
                  f"({deployment.id}) to pool '{deployment.pool}', source {code.kind.value}")
    console.print(f"run it: sluice deployment run {deployment.flow_name}/{deployment.name} "
                  "--watch")


@app.command("ls")
def list_deployments(json: JsonOption = False, profile: ProfileOption = None,
                     api_url: ApiUrlOption = None) -> None:
    """List deployments with their pool, code source and schedules in words."""
    from rich.text import Text

    from .output import Col, listing
    from .schedule_words import describe_schedule

    with client(profile, api_url) as api:
        items = api.list_deployments().items
    if json:
        print_json(items)
        return
    if not items:
        console.print("no deployments yet: sluice deploy PATH:FLOW --name NAME", highlight=False)
        return
    # Named by flow/name (commands take it, or the full id of `inspect`/--json); schedules
    # in words, one a line, the cron text left to `inspect`.
    rows = [[f"{d.flow_name}/{d.name}", d.pool, d.source.kind.value,
             "\n".join(describe_schedule(s, parameters=False, cron_text=False)
                       for s in d.schedules) or "-",
             Text("paused", style="yellow") if d.paused else "active"] for d in items]
    # At 80 columns the source kind, then the pool give way to the schedules.
    console.print(listing(None, [Col("deployment", "name", least=20),
                                 Col("pool", "name", least=8, drop=1), Col("source", drop=2),
                                 Col("schedules", "text", least=20), Col("status")], rows))


def _describe(schedule) -> str:  # noqa: ANN001
    from .schedule_words import describe_schedule

    return describe_schedule(schedule)


@app.command()
def inspect(ref: Annotated[str, typer.Argument(help="flow/deployment or id.")],
            json: JsonOption = False, profile: ProfileOption = None,
            api_url: ApiUrlOption = None) -> None:
    """Show a deployment in words (source, schedules, parameters), its next scheduled runs
    and its recent runs."""
    from rich.text import Text

    from .output import defanged, exact_and_ago
    from .run_views import runs_table
    from .schedule_words import describe_parameters, describe_source

    with client(profile, api_url) as api:
        d = api.get_deployment(ref)
        # Runs that started or are due: the future Scheduled ones are the "next runs" below.
        recent = api.list_flow_runs(deployment_id=d.id, limit=5, scheduled_before=datetime.now(
            timezone.utc) + timedelta(seconds=1)).items
    upcoming = _next_runs(d)
    if json:
        print_json({"deployment": d.model_dump(mode="json"),
                    "next_runs": [t.isoformat() for t in upcoming],
                    "recent_runs": [r.model_dump(mode="json") for r in recent]})
        return
    title = Text(f"{d.flow_name}/{d.name}", style="bold")
    console.print(title.append("  paused: no new scheduled runs" if d.paused else "",
                               style="yellow"))
    limit = (f"{d.concurrency_limit} at once, then {d.collision_strategy.value}"
             if d.concurrency_limit else "no limit")
    fields = [("id", d.id), ("entrypoint", d.entrypoint), ("pool", d.pool),
              ("source", describe_source(d.source)),
              ("parameters", describe_parameters(d.parameters)),
              ("tags", ", ".join(d.tags) or "-"), ("description", d.description or "-"),
              ("version", d.version or "-"), ("concurrency", limit),
              ("retries", f"{d.retries}" + (f", {d.retry_delay_seconds:g} s apart"
                                            if d.retries and d.retry_delay_seconds else ""))]
    fields += [("schedule", _describe(s)) for s in d.schedules] or [("schedule", "none")]
    if d.on_event is not None:
        import json as json_text

        templated = describe_parameters(d.on_event.parameters) if d.on_event.parameters else "-"
        fields += [("on event", json_text.dumps(d.on_event.pattern, separators=(",", ":"))),
                   ("event params", templated)]
    fields += [("trigger" if i == 0 else "", f"#{i + 1}: {len(t.actions)} action(s) "
                f"({sluice_automation_name(d, i)})") for i, t in enumerate(d.triggers)]
    fields += [("next run" if i == 0 else "", exact_and_ago(t)) for i, t in enumerate(upcoming)]
    for label, value in fields:
        console.print(Text(f"{label:>12}{':' if label else ' '} ").append(defanged(value)))
    if recent:
        console.print(runs_table(recent, title="recent runs"))
    else:
        console.print(f"no runs yet: sluice deployment run {d.flow_name}/{d.name}",
                      highlight=False, markup=False)


def sluice_automation_name(deployment, index: int) -> str:  # noqa: ANN001
    """The name of the automation a deployment's n-th trigger became (`automation inspect`)."""
    return f"{deployment.flow_name}/{deployment.name}#{index + 1}"


def _next_runs(deployment, count: int = 5) -> list[datetime]:  # noqa: ANN001
    if deployment.paused or not deployment.schedules:
        return []
    try:
        from sluice_functions.scheduling import next_times
    except ImportError:
        return []
    now = datetime.now(timezone.utc)
    times = sorted(t for s in deployment.schedules if s.active for t in next_times(s, now, count))
    return times[:count]


@app.command()
def run(
    ref: Annotated[str, typer.Argument(help="flow/deployment or id.")],
    param: ParamOption = None,
    start_in: Annotated[str | None, typer.Option(
        "--start-in", help="Start after this long: 90s, 10m, 2h, 1d (or a number of "
        "seconds).")] = None,
    start_at: Annotated[datetime | None, typer.Option(
        "--start-at", help="Start at this time (ISO 8601; no zone = this machine's local "
        "time).")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="Tag of this run, added to "
                                                  "the deployment's; repeatable.")] = None,
    name: Annotated[str | None, typer.Option(
        "--name", help="Name of this run (default: a generated adjective-animal name).")]
    = None,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Stream states and logs until "
                                        "the run ends; the exit code says how it ended.")]
    = False,
    json: JsonOption = False, profile: ProfileOption = None, api_url: ApiUrlOption = None,
) -> None:
    """Start a run of a deployment now, or later with --start-in / --start-at (it runs even
    while the deployment is paused: pausing stops only its schedules)."""
    from ..deployments import parse_params
    from ..exceptions import ValidationError
    from ..models import DeploymentRunRequest

    from .durations import start_time

    when_to_start = start_time(start_in, start_at)
    with client(profile, api_url) as api:
        try:
            flow_run = api.run_deployment(ref, DeploymentRunRequest(
                parameters=parse_params(param or []), scheduled_at=when_to_start,
                tags=tag or [], name=name))
        except ValidationError as exc:  # a 422 naming the parameter: nothing was created
            raise ValidationError(f"{exc.message}; nothing was run (its parameters and types: "
                                  f"`sluice deployment inspect {ref}`)",
                                  details=exc.details) from None
        later = "" if when_to_start is None else \
            f", starts {when_to_start.astimezone():%Y-%m-%d %H:%M:%S %Z}"
        if not watch:
            if json:
                print_json(flow_run)
            else:
                console.print(f"created flow run {flow_run.id} ({flow_run.name}): "
                              f"{styled_state(flow_run.state)}{later}", highlight=False)
            return
        console.print(f"flow run {flow_run.id} ({flow_run.name}) created{later}",
                      highlight=False)
        final = watch_run(api, flow_run.id)
    raise typer.Exit(0 if final.state.is_completed() else 1)


def _require_pool(api, pool: str) -> None:  # noqa: ANN001
    """Refuse a pool that does not exist: its runs would wait (Late) for workers nobody runs.
    The API still creates one on deploy for other clients; the CLI asks for --create-pool."""
    from ..exceptions import NotFound

    try:
        api.get_pool(pool)
    except NotFound:
        raise NotFound(f"pool {pool!r} does not exist: create it with `sluice pool create "
                       f"{pool}`, deploy with --create-pool, or pick one from `sluice pool "
                       "ls`") from None


def _set_paused(ref: str, paused: bool, profile: str | None, api_url: str | None) -> None:
    from ..models import DeploymentUpdate

    with client(profile, api_url) as api:
        d = api.update_deployment(ref, DeploymentUpdate(paused=paused))
    console.print(f"{d.flow_name}/{d.name} {'paused' if paused else 'resumed'}")


@app.command()
def pause(ref: Annotated[str, typer.Argument(help="flow/deployment or id.")],
          profile: ProfileOption = None, api_url: ApiUrlOption = None) -> None:
    """Pause the deployment's schedules: no scheduled run starts while it is paused.

    Runs started by hand (`deployment run`) and runs already handed to workers still run.
    Scheduled times that pass while paused wait, marked "waiting: deployment ... is paused";
    on resume the catch-up policy decides: by default only the most recent missed time runs
    and the others are Cancelled as skipped (catchup=True runs them all, within
    max_lateness_seconds)."""
    _set_paused(ref, True, profile, api_url)


@app.command()
def resume(ref: Annotated[str, typer.Argument(help="flow/deployment or id.")],
           profile: ProfileOption = None, api_url: ApiUrlOption = None) -> None:
    """Resume the deployment's schedules; missed times follow the catch-up policy (see
    `deployment pause --help`)."""
    _set_paused(ref, False, profile, api_url)


@app.command()
def delete(ref: Annotated[str, typer.Argument(help="flow/deployment or id.")],
           yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
           profile: ProfileOption = None, api_url: ApiUrlOption = None) -> None:
    """Delete a deployment (its past runs stay)."""
    if not yes:
        typer.confirm(f"delete deployment {ref}?", abort=True)
    with client(profile, api_url) as api:
        api.delete_deployment(ref)
    console.print(f"deleted {ref}")


@app.command()
def backfill(
    ref: Annotated[str, typer.Argument(help="flow/deployment or id.")],
    start: Annotated[datetime, typer.Option(help="Window start (ISO 8601; no zone = UTC).")],
    end: Annotated[datetime, typer.Option(help="Window end, exclusive (ISO 8601).")],
    reprocess: Annotated[str, typer.Option(help="Times that already have a run: none | failed "
                                           "| all.")] = "none",
    max_active: Annotated[int | None, typer.Option(min=1, help="Most backfill runs active "
                                                   "at once.")] = None,
    json: JsonOption = False, profile: ProfileOption = None, api_url: ApiUrlOption = None,
) -> None:
    """Create the runs the schedules would have made in [start, end), never duplicating a
    scheduled run, fed to workers at most N at a time."""
    from ..models import BackfillRequest

    if reprocess not in ("none", "failed", "all"):
        raise typer.BadParameter("use none, failed or all", param_hint="--reprocess")
    as_utc = [t if t.tzinfo else t.replace(tzinfo=timezone.utc) for t in (start, end)]
    with client(profile, api_url) as api:
        summary = api.backfill_deployment(ref, BackfillRequest(
            start=as_utc[0], end=as_utc[1], reprocess=reprocess, max_active=max_active))
    if json:
        print_json(summary)
        return
    console.print(f"backfill {summary.backfill_id}: {summary.slots} scheduled times, "
                  f"{summary.created} runs created, {summary.reprocessed} re-run, "
                  f"{summary.existing} already there, {summary.released} started now")
