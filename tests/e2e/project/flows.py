"""Flows the end-to-end tests deploy. Each appends to a ledger file keyed by run id, so tests
can count executions and measure overlap."""

from __future__ import annotations

import os
import time
from pathlib import Path

from sluice import flow, get_run_logger, task


def _ledger(path: str, event: str) -> None:
    run_id = os.environ.get("SLUICE_FLOW_RUN_ID", "?")
    with open(path, "a") as fh:
        fh.write(f"{event} {run_id} {time.time():.6f} {os.getpid()}\n")


@task
def step(i: int) -> int:
    return i * i


@flow
def ledger_flow(ledger: str, pause: float = 0.0, n: int = 3) -> int:
    _ledger(ledger, "start")
    get_run_logger().info("squaring %d numbers", n)
    print("stdout line from the flow")
    time.sleep(pause)
    total = sum(f.result() for f in step.map(range(n)))
    _ledger(ledger, "end")
    return total


@flow
def crash_flow() -> None:
    print("about to exit hard", flush=True)
    os._exit(3)


@flow
def slow_flow(pid_file: str, seconds: float = 60.0) -> None:
    Path(pid_file).write_text(str(os.getpid()))
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.05)


@flow
def failing_flow() -> None:
    raise RuntimeError("this flow fails on purpose")


@flow
def first_attempt_hangs(pid_file: str, marker: str) -> str:
    """The first attempt writes its pid and hangs (the test kills its machine); later
    attempts finish at once."""
    if not Path(marker).exists():
        Path(marker).write_text("attempted")
        Path(pid_file).write_text(str(os.getpid()))
        time.sleep(120)
    return "done"


_calls_file = "SLUICE_TEST_CALLS"


@task
def expensive_extract(calls: str) -> list[int]:
    with open(calls, "a") as fh:
        fh.write("extract\n")
    return [1, 2, 3]


@task
def fragile_load(rows: list[int], calls: str, marker: str) -> int:
    with open(calls, "a") as fh:
        fh.write("load\n")
    if not Path(marker).exists():
        Path(marker).write_text("failed once")
        raise ConnectionError("warehouse unavailable")
    return len(rows)


@flow(persist_result=True)
def resumable_pipeline(calls: str, marker: str) -> int:
    return fragile_load(expensive_extract(calls), calls, marker)


@flow
def stamp(ledger: str) -> None:
    _ledger(ledger, "start")


@flow
def needs_six(ledger: str) -> str:
    import six  # installed from the deployment's requirements.txt into a cached venv

    _ledger(ledger, f"six-{six.__version__}")
    return six.__version__


@flow
def child(ledger: str) -> str:
    _ledger(ledger, "child")
    return "child done"


@flow
def credentials_probe(ledger: str, other_run: str = "", trigger: str = "") -> str:
    """Records what its own credentials reach (tests/security/test_principals_e2e.py): the kind
    of token it holds, a subflow, a read of another run, and optionally a trigger."""
    from sluice import run_deployment
    from sluice.client import get_client

    token = os.environ.get("SLUICE_API_TOKEN", "")
    _ledger(ledger, "token-" + (token.split(".")[0] if "." in token else "other" if token
                                else "none"))
    # What else this process could find: its own initial environment (a standby process's
    # predates its run), and its worker's.
    with open("/proc/self/environ", "rb") as fh:
        _ledger(ledger, "own-environ-" + ("has-pool-token" if b"sluice-pool." in fh.read()
                                          else "clean"))
    try:
        with open(f"/proc/{os.environ['SLUICE_WORKER_PID']}/environ", "rb") as fh:
            fh.read()
        _ledger(ledger, "worker-environ-readable")
    except (OSError, KeyError):
        _ledger(ledger, "worker-environ-refused")
    _ledger(ledger, f"subflow-{child(ledger)}".replace(" ", "-"))
    if other_run:
        try:
            get_client().get_flow_run(other_run)
            _ledger(ledger, "read-other-allowed")
        except Exception as exc:  # noqa: BLE001 - the refusal is the point
            _ledger(ledger, f"read-other-refused-{type(exc).__name__}")
    if trigger:
        try:
            run = run_deployment(trigger, {"ledger": ledger}, timeout=60)
            _ledger(ledger, f"trigger-{run.state.type.value}")
        except Exception as exc:  # noqa: BLE001
            _ledger(ledger, f"trigger-refused-{type(exc).__name__}")
    return "probed"
