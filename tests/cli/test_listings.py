"""Issue 15: listings that answer the operator's question, rendered at 80 and 120 columns.

Every listing runs as the real CLI (a subprocess with COLUMNS set, as a terminal of that width
would) against an embedded control plane whose worker has run a few flows. Each asserts that
no line is wider than the terminal and that every id, flow name and state it shows is whole
on one line (nothing wrapped mid-word)."""

from __future__ import annotations

import json
import re
import textwrap
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from rich.cells import cell_len

from tests.cli.served import served_project
from tests.e2e.harness import wait_for

WIDTHS = [80, 120]
LONG_FLOW = "quarterly-revenue-reconciliation-report"

FLOWS = textwrap.dedent(f'''
    from pathlib import Path

    from sluice import flow, get_run_logger, task


    @task
    def extract(i: int) -> int:
        get_run_logger().info("extracting part %d", i)
        return i


    @flow(name="orders-etl")
    def orders_etl(count: int = 3) -> int:
        get_run_logger().info("loading %d parts", count)
        return sum(extract(i) for i in range(count))


    @flow(name="flaky")
    def flaky(marker: str) -> str:
        get_run_logger().info("attempt starts")
        if not Path(marker).exists():
            Path(marker).write_text("failed once")
            raise RuntimeError("fails on the first attempt")
        return "ok"


    @flow(name="greet")
    def greet(name: str = "world") -> str:
        return name


    @flow(name="{LONG_FLOW}")
    def long_named() -> None:
        pass
''')


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A control plane with a worker, four deployments (a daily cron in Berlin time, a 20 s
    interval, one retried once, one with a long flow name) and a finished run of each."""
    root = tmp_path_factory.mktemp("cli-listings")
    with served_project(root, FLOWS, worker=True) as (sluice, project):
        deploy = ("deploy", "--project-dir", str(project))
        sluice.cli(*deploy, "flows.py:orders_etl", "--name", "nightly", "--cron", "0 2 * * *",
                   "--timezone", "Europe/Berlin", "--param", "count=3", cwd=project)
        sluice.cli(*deploy, "flows.py:flaky", "--name", "retrying", "--retries", "1",
                   "--param", f"marker={root / 'marker'}", cwd=project)
        sluice.cli(*deploy, "flows.py:greet", "--name", "every-20s", "--interval", "20",
                   cwd=project)
        sluice.cli(*deploy, "flows.py:long_named", "--name", "quarter-end", cwd=project)
        runs = {}
        for number, ref in enumerate(("orders-etl/nightly", "flaky/retrying",
                                      f"{LONG_FLOW}/quarter-end")):
            # Named runs: generated names may repeat among the 20 s deployment's many runs.
            run = json.loads(sluice.cli("deployment", "run", ref, "--json", "--name",
                                        f"run-{number}").stdout)
            runs[ref.split("/")[0]] = sluice.wait_terminal(run["id"], 120)
            # A run's last task runs and log lines may arrive just after its final state.
            wait_for(lambda: "Finished in state Completed" in sluice.cli(
                "flow-run", "logs", run["id"]).stdout, 60, f"the last log lines of {ref}")
        sluice.cli("secret", "set", "db-password", "--value", "s3cret")
        yield SimpleNamespace(sluice=sluice, runs=runs)


def render(served, width: int, *args: str, code: int = 0) -> str:
    done = served.sluice.cli(*args, env={"COLUMNS": str(width)}, check=False)
    assert done.returncode == code, f"sluice {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout if code == 0 else done.stderr


def assert_fits(text: str, width: int, tokens) -> None:  # noqa: ANN001
    """No line wider than the terminal; every token whole on one line."""
    lines = text.splitlines()
    too_wide = [line for line in lines if cell_len(line) > width]
    assert not too_wide, f"lines wider than {width}:\n{text}"
    for token in tokens:
        assert any(token in line for line in lines), f"{token!r} is not whole:\n{text}"


def short(run_id: str) -> str:
    return run_id[-8:]


# -- flow-run ls ---------------------------------------------------------------------------------

@pytest.mark.parametrize("width", WIDTHS)
def test_flow_run_ls_shows_started_and_due_runs_with_short_ids(served, width):
    # Given finished runs and an interval schedule that keeps an hour of future runs
    listed = served.sluice.cli_json("flow-run", "ls")
    upcoming = served.sluice.cli_json("flow-run", "ls", "--upcoming")
    # When the runs are listed at this width
    now = datetime.now(timezone.utc)
    out = render(served, width, "flow-run", "ls")
    # Then the table shows runs that started or are due, by short id, whole
    # (the CLI counts a run due up to 1 s ahead: the control plane's "now" may be ahead)
    assert listed and all(datetime.fromisoformat(r["scheduled_at"]) <= now + timedelta(seconds=1)
                          for r in listed)
    mine = [served.runs["orders-etl"], served.runs["flaky"]]
    assert_fits(out, width, [short(r["id"]) for r in mine] +
                ["orders-etl/" + mine[0]["name"], "flaky/" + mine[1]["name"], "Completed",
                 "future runs: --upcoming"])
    # and none of the runs still in the future when it was listed
    future = [r for r in upcoming
              if datetime.fromisoformat(r["scheduled_at"]) > now + timedelta(seconds=5)]
    assert future and not [r for r in future if short(r["id"]) in out]
    assert "ago" in out


@pytest.mark.parametrize("width", WIDTHS)
def test_flow_run_ls_upcoming_lists_future_runs_soonest_first(served, width):
    # Given an interval schedule / When the future runs are listed
    runs = served.sluice.cli_json("flow-run", "ls", "--upcoming", "--limit", "5")
    now = datetime.now(timezone.utc)
    out = render(served, width, "flow-run", "ls", "--upcoming", "--limit", "5")
    # Then they are Scheduled, in the future, soonest first, with a relative time
    times = [datetime.fromisoformat(r["scheduled_at"]) for r in runs]
    assert len(runs) == 5 and times == sorted(times)
    assert all(r["state"]["type"] == "SCHEDULED" for r in runs)
    # (the soonest may come due between the two listings: the table then starts one later)
    still_future = [r for r, t in zip(runs, times) if t > now + timedelta(seconds=5)]
    assert_fits(out, width, [short(r["id"]) for r in still_future] + ["Scheduled", "in "])
    assert "the 5 soonest future runs; more: --limit 10" in " ".join(out.split())


def test_flow_run_ls_filters_by_state_flow_deployment_and_since(served):
    sluice = served.sluice
    # When filtered by several states (comma separated and repeated)
    states = {r["state"]["type"] for r in sluice.cli_json(
        "flow-run", "ls", "--state", "completed,failed", "--state", "CRASHED")}
    # Then only those states come back
    assert states and states <= {"COMPLETED", "FAILED", "CRASHED"}
    # When filtered by flow, by deployment (flow/name) and by a time window
    assert {r["flow_name"] for r in sluice.cli_json("flow-run", "ls", "--flow",
                                                    "orders-etl")} == {"orders-etl"}
    by_deployment = sluice.cli_json("flow-run", "ls", "--deployment", "flaky/retrying")
    assert [r["id"] for r in by_deployment] == [served.runs["flaky"]["id"]]
    assert sluice.cli_json("flow-run", "ls", "--since", "1h")
    assert sluice.cli_json("flow-run", "ls", "--upcoming", "--since", "2999-01-01") == []
    bad = render(served, 80, "flow-run", "ls", "--since", "2999-01-01T00:00", code=2)
    assert "for future runs add --upcoming" in " ".join(bad.split())
    # Then a mistyped filter is refused, naming the fix
    bad = render(served, 80, "flow-run", "ls", "--since", "yesterday", code=2)
    assert "30m, 2h, 1d" in " ".join(bad.split())
    bad = render(served, 80, "flow-run", "ls", "--state", "done", code=2)
    assert "not a state type" in bad


# -- flow-run inspect and logs -------------------------------------------------------------------

@pytest.mark.parametrize("width", WIDTHS)
def test_flow_run_inspect_by_short_id_or_name_shows_times_history_and_task_runs(served, width):
    run = served.runs["orders-etl"]
    task_runs = served.sluice.cli_json("task-run", "ls", run["id"])
    # When a run is inspected by its short id, and by its name
    out = render(served, width, "flow-run", "inspect", short(run["id"]))
    by_name = render(served, width, "flow-run", "inspect", run["name"])
    assert f"id: {run['id']}" in out and f"id: {run['id']}" in by_name
    # Then times read to the second and relative, and task runs by name, nothing wrapped
    assert re.search(r"started: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+ \(\d+ (s|min) ago\)", out)
    assert_fits(out, width, [run["id"], "orders-etl/" + run["name"], "Completed", "Running",
                             "deployment: orders-etl/nightly", "parameters: count=3"]
                + [t["name"] for t in task_runs] + [short(t["id"]) for t in task_runs])


@pytest.mark.parametrize("width", WIDTHS)
def test_flow_run_inspect_shows_a_retry_in_its_history(served, width):
    run = served.runs["flaky"]
    out = render(served, width, "flow-run", "inspect", short(run["id"]))
    assert_fits(out, width, ["AwaitingRetry (after Failed)", "Retrying", "attempts: 2",
                             "task runs: none"])


def test_flow_run_logs_name_task_runs_and_mark_later_attempts(served):
    # When the logs of a run with tasks are printed
    out = served.sluice.cli("flow-run", "logs", served.runs["orders-etl"]["name"]).stdout
    # Then each task run's lines carry its name
    for i in range(3):
        assert f"[extract-{i}] extracting part {i}" in out
    # And a retried run's second attempt is marked, its first is not
    lines = served.sluice.cli("flow-run", "logs", short(served.runs["flaky"]["id"])).stdout
    attempts = [line for line in lines.splitlines() if "attempt starts" in line]
    assert len(attempts) == 2
    assert "[#2]" not in attempts[0] and "[#2] attempt starts" in attempts[1]


def test_an_unknown_run_is_refused_with_exit_code_3(served):
    err = render(served, 80, "flow-run", "inspect", "no-such-run", code=3)
    assert "no-such-run" in err


# -- task runs -----------------------------------------------------------------------------------

@pytest.mark.parametrize("width", WIDTHS)
def test_task_run_ls_and_inspect(served, width):
    run = served.runs["orders-etl"]
    task_runs = served.sluice.cli_json("task-run", "ls", short(run["id"]))
    assert [t["name"] for t in task_runs] == ["extract-0", "extract-1", "extract-2"]
    # When listed, and one inspected by name and by its short id
    listed = render(served, width, "task-run", "ls", short(run["id"]))
    by_name = render(served, width, "task-run", "inspect", run["name"], "extract-1")
    by_id = render(served, width, "task-run", "inspect", short(run["id"]),
                   short(task_runs[1]["id"]))
    # Then names, short ids and states are whole; inspect shows attempts, times, its logs
    assert_fits(listed, width, [t["name"] for t in task_runs] +
                [short(t["id"]) for t in task_runs] + ["Completed", "3 task runs"])
    assert f"id: {task_runs[1]['id']}" in by_id
    assert_fits(by_name, width, [task_runs[1]["id"], "attempts: 1", "[extract-1] extracting "
                                 "part 1", "cache: no key, not used"])
    assert re.search(r"started: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d", by_name)


def test_task_run_filters_and_mistakes(served):
    run = served.runs["orders-etl"]
    assert served.sluice.cli_json("task-run", "ls", run["id"], "--state", "failed") == []
    assert len(served.sluice.cli_json("task-run", "ls", run["id"], "--state",
                                      "completed")) == 3
    # A name the run has no task run of is refused, listing the names it has
    err = render(served, 80, "task-run", "inspect", run["id"], "load-1", code=3)
    assert "extract-0, extract-1, extract-2" in " ".join(err.split())


# -- flows, deployments, pools, workers, profiles, secrets ---------------------------------------

@pytest.mark.parametrize("width", WIDTHS)
def test_flow_ls_lists_flows_with_deployments_and_last_run(served, width):
    out = render(served, width, "flow", "ls")
    flows = {f["flow_name"]: f for f in served.sluice.cli_json("flow", "ls")}
    assert flows["orders-etl"]["deployments"] == 1
    assert flows["orders-etl"]["last_run"]["id"] == served.runs["orders-etl"]["id"]
    assert_fits(out, width, ["orders-etl", "flaky", "greet", short(served.runs["flaky"]["id"]),
                             "Completed"])


@pytest.mark.parametrize("width", WIDTHS)
def test_deployment_ls_and_inspect_speak_in_words(served, width):
    listed = render(served, width, "deployment", "ls")
    inspected = render(served, width, "deployment", "inspect", "orders-etl/nightly")
    assert_fits(listed, width, ["orders-etl/nightly", "greet/every-20s", "every 20 seconds",
                                "every day at 02:00", "active"])
    assert_fits(inspected, width, ["source: local path", "parameters: count=3",
                                   "every day at 02:00 Europe/Berlin", "next run:",
                                   short(served.runs["orders-etl"]["id"])])
    # No Python reprs of models or dicts
    assert not [s for s in ("{'", "kind=", "SourceKind") if s in listed + inspected]


@pytest.mark.parametrize("width", WIDTHS)
def test_pool_and_worker_listings(served, width):
    pools = render(served, width, "pool", "ls")
    pool = render(served, width, "pool", "inspect", "default")
    workers = render(served, width, "worker", "ls")
    assert_fits(pools, width, ["default", "1/1", "workers online", "dead letters"])
    assert_fits(pool, width, ["w0", "online", "queue:"])
    assert_fits(workers, width, ["w0", "default", "online"])


@pytest.mark.parametrize("width", WIDTHS)
def test_profile_and_secret_listings(served, width):
    assert_fits(render(served, width, "profile", "ls"), width,
                ["local", served.sluice.url, "* active"])
    assert_fits(render(served, width, "secret", "ls"), width, ["db-password"])


def test_a_long_flow_name_is_cut_with_an_ellipsis_never_the_id(served):
    # Given a run of a flow whose name does not fit an 80-column table
    run = served.runs[LONG_FLOW]
    # When runs are listed at 80 columns
    out = render(served, 80, "flow-run", "ls", "--flow", LONG_FLOW)
    # Then the id stays whole, the name is cut with an ellipsis, no line is wider
    assert_fits(out, 80, [short(run["id"]), "Completed", "quarterly-revenue"])
    assert "…" in out
    # and at 120 columns it is whole
    assert_fits(render(served, 120, "flow-run", "ls", "--flow", LONG_FLOW), 120,
                [f"{LONG_FLOW}/{run['name']}"])


# -- the pieces, in process ----------------------------------------------------------------------

def _rendered(table, width: int) -> str:  # noqa: ANN001
    import io

    from rich.console import Console

    screen = io.StringIO()
    Console(width=width, file=screen, color_system=None).print(table)
    return screen.getvalue()


def test_a_narrow_listing_drops_low_value_columns_before_cutting_ids_or_names():
    from sluice.cli.output import Col, listing

    # Given a listing whose columns do not all fit 50 columns
    columns = [Col("id"), Col("name", "name", least=10), Col("state"),
               Col("duration", drop=1), Col("scheduled", drop=2)]
    rows = [["0123abcd", "orders-etl/amber-newt", "Completed", "0.06s", "12 min ago"]]
    # When it is rendered at 50 and at 120 columns
    narrow = _rendered(listing(None, columns, rows, width=50), 50)
    wide = _rendered(listing(None, columns, rows, width=120), 120)
    # Then at 50 the scheduled column went first, the id and the name stayed whole
    assert "scheduled" not in narrow and "0123abcd" in narrow
    assert "orders-etl/amber-newt" in narrow
    assert all(len(line) <= 50 for line in narrow.splitlines())
    # and at 120 every column is there
    assert "scheduled" in wide and "12 min ago" in wide


def test_listing_cells_are_text_not_markup_and_controls_are_escaped():
    from sluice.cli.output import Col, listing

    out = _rendered(listing(None, [Col("name", "name")], [["[bold]x\x1b[2J"]]), 80)
    assert "[bold]x\\x1b[2J" in out and "\x1b" not in out


def test_relative_times_read_as_people_say_them():
    from sluice.cli.output import ago

    now = datetime(2026, 12, 4, 12, 0, tzinfo=timezone.utc)
    assert ago(now - timedelta(seconds=12), now) == "12 s ago"
    assert ago(now - timedelta(minutes=3, seconds=5), now) == "3 min ago"
    assert ago(now + timedelta(seconds=30), now) == "in 30 s"
    assert ago(now + timedelta(hours=2), now) == "in 2 h"
    assert ago(now - timedelta(days=3), now) == "3 d ago"
    assert ago(None) == "-"


def _task_run(id_: str, name: str):  # noqa: ANN202
    from sluice.models import StateType, TaskRun
    from sluice.models.states import new_state

    return TaskRun(id=id_, flow_run_id="f", task_name=name.split("-")[0], name=name,
                   state=new_state(StateType.COMPLETED))


def test_a_task_run_is_named_by_name_id_or_a_unique_start_or_end_of_its_id():
    from sluice.cli.refs import resolve_task_run
    from sluice.exceptions import Conflict, NotFound

    # Given three task runs whose ids share a start
    runs = [_task_run("0661d3e25fb8e6ab00000000aaaa1111", "extract-0"),
            _task_run("0661d3e25fb8e6ab00000000bbbb2222", "extract-1"),
            _task_run("0661d3e25fb8e6ab00000000cccc3333", "load-0")]
    # Then a name, a full id, an id's end and a unique start each name one
    assert resolve_task_run(runs, "load-0", "r").name == "load-0"
    assert resolve_task_run(runs, runs[1].id, "r").name == "extract-1"
    assert resolve_task_run(runs, "bbbb2222", "r").name == "extract-1"
    # And a shared start is a conflict listing the candidates, an unknown name lists names
    with pytest.raises(Conflict, match="matches 3 task runs.*aaaa1111 \\(extract-0\\)"):
        resolve_task_run(runs, "0661d3e2", "r")
    with pytest.raises(NotFound, match="extract-0, extract-1, load-0"):
        resolve_task_run(runs, "transform-0", "r")


def test_log_lines_count_an_attempt_from_just_before_it_runs():
    from sluice.cli.run_views import attempt_starts

    def at(seconds: float) -> datetime:
        return datetime(2026, 12, 4, 19, 28, tzinfo=timezone.utc) + timedelta(seconds=seconds)

    # Given a run claimed again (Pending at 1.126) before its first attempt's last line (1.129)
    kinds = [("SCHEDULED", 0.8), ("PENDING", 0.82), ("RUNNING", 1.104), ("SCHEDULED", 1.12),
             ("PENDING", 1.126), ("RUNNING", 1.64), ("COMPLETED", 1.645)]
    history = [SimpleNamespace(type=SimpleNamespace(value=k), timestamp=at(t))
               for k, t in kinds]
    # When attempts are located / Then the second one counts from just before it ran
    starts = attempt_starts(history)
    assert len(starts) == 2
    assert starts[1] > at(1.129) and starts[1] < at(1.64)


class _FutureRuns:
    """The API's run listing over fixed runs: newest first, `scheduled_after` inclusive,
    `scheduled_before` exclusive (as the control plane answers)."""

    def __init__(self, times: list[datetime]) -> None:
        self.runs = [SimpleNamespace(id=f"r{i}", scheduled_at=t) for i, t in enumerate(times)]
        self.read = 0

    def _matching(self, scheduled_after=None, scheduled_before=None, **_):  # noqa: ANN001, ANN202
        found = [r for r in self.runs if (scheduled_after is None or r.scheduled_at >=
                                          scheduled_after)
                 and (scheduled_before is None or r.scheduled_at < scheduled_before)]
        return sorted(found, key=lambda r: r.scheduled_at, reverse=True)

    def iter_flow_runs(self, **filters):  # noqa: ANN003, ANN201
        for run in self._matching(**filters):
            self.read += 1
            yield run

    def list_flow_runs(self, limit: int = 50, **filters):  # noqa: ANN003, ANN201
        return SimpleNamespace(items=self._matching(**filters)[:limit])


@pytest.mark.parametrize(("times", "limit", "more"), [
    # an interval of 1 s: 5,000 future runs, more than one window may hold
    ([timedelta(seconds=s) for s in range(1, 5001)], 5, True),
    # three runs days apart: windows grow until they are found
    ([timedelta(days=d) for d in (2, 3, 10)], 5, False),
    ([timedelta(days=d) for d in (2, 3, 10)], 2, True),
])
def test_upcoming_runs_are_the_soonest_whatever_the_spacing(times, limit, more):
    from sluice.cli.run_views import WINDOW_CAP, soonest_runs

    now = datetime(2026, 12, 4, 12, 0, tzinfo=timezone.utc)
    api = _FutureRuns([now + t for t in times])
    # When the soonest runs are asked for
    runs, has_more = soonest_runs(api, {}, now, limit)
    # Then they are the soonest, soonest first, and whether more exist is said
    assert [r.scheduled_at for r in runs] == sorted(now + t for t in times)[:limit]
    assert has_more is more
    assert api.read <= 4 * (WINDOW_CAP + 1)  # bounded reading, not the whole future


def test_log_lines_name_task_runs_with_their_attempts_and_mark_the_flows_later_attempts():
    from sluice.cli.run_views import LogLines

    def at(seconds: float) -> datetime:
        return datetime(2026, 12, 4, 19, 28, tzinfo=timezone.utc) + timedelta(seconds=seconds)

    def state(kind: str, seconds: float):  # noqa: ANN202
        return SimpleNamespace(type=SimpleNamespace(value=kind), timestamp=at(seconds))

    # Given a run in its second attempt whose task extract-3 ran twice
    api = SimpleNamespace(
        all_task_runs=lambda _: [SimpleNamespace(id="t3", name="extract-3", run_count=2),
                                 SimpleNamespace(id="t4", name="extract-4", run_count=1)],
        flow_run_history=lambda _: [state("SCHEDULED", 0), state("RUNNING", 1),
                                    state("SCHEDULED", 5), state("PENDING", 6),
                                    state("RUNNING", 7)])

    def line(task_run_id, seconds: float):  # noqa: ANN001, ANN202
        return SimpleNamespace(task_run_id=task_run_id, timestamp=at(seconds),
                               level=SimpleNamespace(value="INFO"), message="hello")

    lines = LogLines(api, "r")
    # Then task lines carry the name (and attempts), the flow's lines its later attempt
    assert "[extract-3 #2] hello" in lines.format(line("t3", 2))
    assert "[extract-4] hello" in lines.format(line("t4", 8))
    assert "[#" not in lines.format(line(None, 2)) and "[#2] hello" in lines.format(line(None, 8))
