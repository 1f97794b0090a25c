"""`sluice deploy` and `sluice deployment ls|inspect|run|pause|resume|delete|backfill`."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated

import typer

from .common import ApiUrlOption, JsonOption, ProfileOption, client
from .output import console, duration, errors, print_json, styled_state, table, when

app = typer.Typer(no_args_is_help=True, help="Deployments: flows registered for workers.")

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
    paused: Annotated[bool, typer.Option(help="Create paused (no scheduled runs).")] = False,
    project_dir: Annotated[Path, typer.Option(help="Project root (bundle contents, local "
                                              "path).")] = Path("."),
    dry_run: Annotated[bool, typer.Option("--dry-run", help="With --source bundle: list the "
                                          "files the bundle would hold and what the default "
                                          "exclusions leave out; upload and register "
                                          "nothing.")] = False,
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
            retries=retries)
        _show_bundle_plan(plan, zip_bytes=len(data), sha256=digest, as_json=json)
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
            retries=retries)
        deployment = api.create_deployment(request)
    if plan is not None and plan.secret_exclusions:
        left_out = ", ".join(_shown(e.path) for e in plan.secret_exclusions[:5])
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


def _shown(path: str) -> str:
    """A file name safe to print: control and bidi characters written as escapes."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode()
                   for ch in path)


def _size(n: int) -> str:
    if n < 1000:
        return f"{n} B"
    return f"{n / 1000:.1f} KB" if n < 1_000_000 else f"{n / 1_000_000:.1f} MB"


def _show_bundle_plan(plan, *, zip_bytes: int, sha256: str, as_json: bool) -> None:  # noqa: ANN001
    """`deploy --source bundle --dry-run`: what would be packed, and what was left out."""
    from rich.text import Text

    if as_json:
        print_json({"root": str(plan.root), "sha256": sha256, "zip_bytes": zip_bytes,
                    "files": [{"name": f.name, "size": f.size, "link_target": f.link_target}
                              for f in plan.files],
                    "excluded": [{"path": e.path, "reason": e.reason, "default": e.by_default,
                                  "secret": e.secret} for e in plan.excluded]})
        return
    packed = table(f"bundle of {plan.root}", "file", "size")
    for f in plan.files:
        name = _shown(f.name) + (f" -> {_shown(f.link_target)}" if f.link_target else "")
        packed.add_row(Text(name), _size(f.size))
    console.print(packed)
    defaults = plan.default_exclusions
    if defaults:
        left_out = table("left out by the default exclusions ('!pattern' in .sluiceignore "
                         "ships one)", "path", "why")
        for e in defaults:
            left_out.add_row(Text(_shown(e.path), style="yellow" if e.secret else ""),
                             Text(e.reason))
        console.print(left_out)
    own = len(plan.excluded) - len(defaults)
    console.print(f"{len(plan.files)} files, {_size(plan.total_size)} ({_size(zip_bytes)} "
                  f"zipped), sha256 {sha256[:12]}; {own} path(s) left out by .gitignore/"
                  ".sluiceignore. Dry run: nothing uploaded, nothing registered.",
                  highlight=False, markup=False)


@app.command("ls")
def list_deployments(json: JsonOption = False, profile: ProfileOption = None,
                     api_url: ApiUrlOption = None) -> None:
    """List deployments."""
    with client(profile, api_url) as api:
        items = api.list_deployments().items
    if json:
        print_json(items)
        return
    t = table(None, "deployment", "id", "pool", "source", "schedules", "status")
    for d in items:
        t.add_row(f"{d.flow_name}/{d.name}", d.id, d.pool, d.source.kind.value,
                  ", ".join(_describe(s) for s in d.schedules) or "-",
                  "[yellow]paused[/yellow]" if d.paused else "active")
    console.print(t)


def _describe(schedule) -> str:  # noqa: ANN001
    what = f"cron '{schedule.cron}'" if schedule.cron else f"every {schedule.interval_seconds:g}s"
    return f"{what} {schedule.timezone}" + ("" if schedule.active else " (inactive)")


@app.command()
def inspect(ref: Annotated[str, typer.Argument(help="flow/deployment or id.")],
            json: JsonOption = False, profile: ProfileOption = None,
            api_url: ApiUrlOption = None) -> None:
    """Show a deployment and its next scheduled runs."""
    with client(profile, api_url) as api:
        d = api.get_deployment(ref)
        recent = api.list_flow_runs(deployment_id=d.id, limit=5).items
    upcoming = _next_runs(d)
    if json:
        print_json({"deployment": d.model_dump(mode="json"),
                    "next_runs": [t.isoformat() for t in upcoming],
                    "recent_runs": [r.model_dump(mode="json") for r in recent]})
        return
    console.print(f"[bold]{d.flow_name}/{d.name}[/bold]  ({d.id})"
                  + ("  [yellow]paused[/yellow]" if d.paused else ""))
    for label, value in (("entrypoint", d.entrypoint), ("pool", d.pool),
                         ("source", d.source.model_dump(exclude_none=True)),
                         ("parameters", d.parameters), ("tags", ", ".join(d.tags) or "-"),
                         ("description", d.description or "-"), ("version", d.version or "-"),
                         ("concurrency", f"{d.concurrency_limit or '∞'} "
                                         f"({d.collision_strategy.value})"),
                         ("retries", d.retries)):
        console.print(f"{label:>12}: {value}", highlight=False)
    for schedule in d.schedules:
        console.print(f"{'schedule':>12}: {_describe(schedule)}")
    if upcoming:
        console.print(f"{'next runs':>12}: " + ", ".join(
            t.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z") for t in upcoming))
    t = table("recent runs", "id", "name", "state", "scheduled", "duration")
    for r in recent:
        t.add_row(r.id, r.name or "-", styled_state(r.state), when(r.scheduled_at),
                  duration(r.duration_seconds))
    console.print(t)


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
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Stream states and logs until "
                                        "the run ends; the exit code says how it ended.")]
    = False,
    json: JsonOption = False, profile: ProfileOption = None, api_url: ApiUrlOption = None,
) -> None:
    """Start a run of a deployment now."""
    from ..deployments import parse_params
    from ..models import DeploymentRunRequest

    from ..exceptions import ValidationError

    with client(profile, api_url) as api:
        try:
            flow_run = api.run_deployment(ref, DeploymentRunRequest(
                parameters=parse_params(param or [])))
        except ValidationError as exc:  # a 422 naming the parameter: nothing was created
            raise ValidationError(f"{exc.message}; nothing was run (its parameters and types: "
                                  f"`sluice deployment inspect {ref}`)",
                                  details=exc.details) from None
        if not watch:
            if json:
                print_json(flow_run)
            else:
                console.print(f"created flow run {flow_run.id} ({flow_run.name}): "
                              f"{styled_state(flow_run.state)}")
            return
        console.print(f"flow run {flow_run.id} ({flow_run.name}) created")
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


def watch_run(api, flow_run_id: str, poll: float = 0.3):  # noqa: ANN001, ANN201
    """Print state changes and log lines until the run ends; return the final run."""
    cursor, last_state = None, None
    while True:
        run_now = api.get_flow_run(flow_run_id)
        if run_now.state.name != last_state:
            last_state = run_now.state.name
            message = f" — {run_now.state.message}" if run_now.state.message else ""
            console.print(f"{time.strftime('%H:%M:%S')} state {styled_state(run_now.state)}"
                          f"{message}", highlight=False)
        while True:
            page = api.read_logs(flow_run_id, cursor=cursor, limit=200)
            cursor = page.next_cursor or cursor
            for line in page.items:
                console.print(f"{line.timestamp.astimezone():%H:%M:%S} {line.level.value:<7} "
                              f"{line.message}", highlight=False, markup=False)
            if not page.items:
                break
        if run_now.state.is_terminal:
            if not run_now.state.is_completed():
                errors.print(f"run ended {run_now.state.name}")
            return run_now
        time.sleep(poll)


def _set_paused(ref: str, paused: bool, profile: str | None, api_url: str | None) -> None:
    from ..models import DeploymentUpdate

    with client(profile, api_url) as api:
        d = api.update_deployment(ref, DeploymentUpdate(paused=paused))
    console.print(f"{d.flow_name}/{d.name} {'paused' if paused else 'resumed'}")


@app.command()
def pause(ref: Annotated[str, typer.Argument(help="flow/deployment or id.")],
          profile: ProfileOption = None, api_url: ApiUrlOption = None) -> None:
    """Stop scheduling new runs (runs already created still run)."""
    _set_paused(ref, True, profile, api_url)


@app.command()
def resume(ref: Annotated[str, typer.Argument(help="flow/deployment or id.")],
           profile: ProfileOption = None, api_url: ApiUrlOption = None) -> None:
    """Schedule runs again."""
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
