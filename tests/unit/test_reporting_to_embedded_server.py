"""Issue 20, end to end on the embedded server: a flow run reported through the HTTP reporter
(snapshots, one-call serialization, finished task runs, the final state with the last batch)
lands whole: every task run once in its final state, every log line, the run Completed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import sluice
from sluice import flow, get_run_logger, task, tokens
from sluice.client.api import SluiceClient
from sluice.client.reporter import HttpReporter
from sluice.profiles import Connection
from sluice_functions.embedded.server import EmbeddedServer

OPERATOR = tokens.new_operator_token()


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[EmbeddedServer]:
    data = tmp_path_factory.mktemp("reporting") / "data"
    server = EmbeddedServer(data_dir=data, port=0, token=OPERATOR, tick_seconds=3600).start()
    yield server
    server.stop()


@pytest.fixture
def api(server) -> Iterator[SluiceClient]:
    with SluiceClient(Connection(server.url, OPERATOR), attempts=1) as client:
        yield client


@task
def double(x: int) -> int:
    return 2 * x


@task
def noisy(x: int) -> int:
    get_run_logger().info("working on %d", x)
    return x


attempts: list[int] = []


@task(retries=1, retry_delay_seconds=0)
def flaky() -> str:
    attempts.append(1)
    if len(attempts) == 1:
        raise ValueError("first attempt fails")
    return "ok"


@flow
def pipeline(n: int) -> int:
    total = sum(double(i) for i in range(n))
    total += sum(f.result() for f in double.map(range(n)))
    total += noisy(1)
    flaky()
    return total


def test_every_task_run_and_log_line_lands_once_with_the_runs_final_state(api):
    # Given a reporter to the embedded server, batches smaller than the run's records
    attempts.clear()
    reporter = HttpReporter(api, flush_interval=0.05, max_batch=25)

    # When a flow with sequential, mapped, logging and retried tasks runs
    state = sluice.run_flow(pipeline, {"n": 60}, reporter=reporter)
    reporter.close()

    # Then the run is Completed and every task run is stored once, in its final state
    assert state.type.value == "COMPLETED"
    run = next(r for r in api.list_flow_runs(limit=50).items if r.flow_name == "pipeline")
    assert run.state.type.value == "COMPLETED"
    task_runs = api.all_task_runs(run.id)
    assert len(task_runs) == 60 + 60 + 1 + 1
    assert len({t.id for t in task_runs}) == len(task_runs)
    assert {t.state.type.value for t in task_runs} == {"COMPLETED"}
    assert next(t for t in task_runs if t.task_name == "flaky").run_count == 2
    # and the log lines of the run are there
    messages = [line.message for line in api.read_logs(run.id, limit=200).items]
    assert any("working on 1" in m for m in messages)
