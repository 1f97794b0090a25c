"""Flows the reliability suite deploys. Every flow appends to a ledger file, one line per event,
written with a single O_APPEND write (whole lines even with many processes at once):

    <event> <flow run id> <attempt> <lease tail> <step> <pid> <ppid> <unix time>

`attempt` is the run's run_count in this process and the lease tail names the claim, so the
checker (`tests/reliability/invariants.py`) can tell attempts apart; `pid`/`ppid` are the flow
process and its worker (the suite's pid ledger: a "machine loss" kills the worker and every flow
process it started). Events: flow-start, step-begin, step-done (the task's result is persisted:
a later attempt must not run the step again), step-cached (a later attempt found it), flow-end
(the body returned; the final state is not reported yet).
"""

from __future__ import annotations

import os
import signal
import time

from pydantic import SecretStr

import sluice
from sluice import flow, get_run_logger, task
from sluice.engine.context import get_flow_run_context

_ledger_path: str | None = None
_attempt = "?"


def record(event: str, step: object = "-", ledger: str | None = None) -> None:
    path = ledger or _ledger_path
    if path is None:
        return
    run_id = os.environ.get("SLUICE_FLOW_RUN_ID")
    if run_id is None:  # a flow run as a script: no worker named it
        from sluice.engine.context import flow_run_ctx

        context = flow_run_ctx.get()
        run_id = context.flow_run.id if context is not None else "?"
    lease = (os.environ.get("SLUICE_LEASE") or "-")[-8:]
    line = (f"{event} {run_id} {_attempt} {lease} {step} {os.getpid()} {os.getppid()} "
            f"{time.time():.6f}\n")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def _begin(ledger: str) -> None:
    global _ledger_path, _attempt
    _ledger_path = ledger
    _attempt = str(get_flow_run_context().flow_run.run_count)
    record("flow-start")


def _step_finished(task, task_run, state) -> None:  # noqa: ANN001 - a sluice hook
    index = task_run.name.rsplit("-", 1)[1]
    record("step-cached" if state.name == "Cached" else "step-done", index)


@task(persist_result=True, on_completion=[_step_finished])
def step(seconds: float, lines: int) -> int:
    from sluice.engine.context import task_run_ctx

    index = int(task_run_ctx.get().task_run.name.rsplit("-", 1)[1])
    record("step-begin", index)
    logger = get_run_logger()
    pause = seconds / max(1, lines)
    for line in range(lines):
        logger.info("line %d of step %d", line, index)
        time.sleep(pause)
    if not lines:
        time.sleep(seconds)
    return index


@flow(persist_result=True)
def chaos_flow(ledger: str, steps: int = 3, step_seconds: float = 0.2, linger: float = 0.0,
               lines: int = 0) -> int:
    """`steps` tasks one after the other (persisted results: a retry resumes after the last
    completed one), then `linger` seconds between the last task and the final report."""
    _begin(ledger)
    total = sum(step(step_seconds, lines) for _ in range(steps))
    record("flow-end")
    time.sleep(linger)
    return total


@flow
def poison_flow(ledger: str, how: str = "exit") -> None:
    """Kills its own process every time: `exit` (os._exit(3)) or `sigkill`."""
    _begin(ledger)
    if how == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    os._exit(3)


@task
def leaky_task(value: str) -> None:
    raise ValueError(f"the task saw {value}")


@flow(log_prints=True)
def secret_flow(ledger: str, password: SecretStr, secret_name: str) -> None:
    """Leaks its secrets every way a careless flow can: print, log, a failed task, a raise."""
    _begin(ledger)
    api_key = sluice.secret(secret_name)
    plain = password.get_secret_value()
    # Proof the values arrived, without writing them anywhere: their hashes.
    import hashlib

    for value in (plain, api_key):
        record("got", hashlib.sha256(value.encode()).hexdigest()[:16])
    print(f"password is {plain} and the api key is {api_key}")
    get_run_logger().warning("logging the api key %s and password %s", api_key, plain)
    import sys

    print(f"stderr copy: {api_key}", file=sys.stderr)
    leaky_task.submit(api_key).wait()
    record("flow-end")
    raise RuntimeError(f"giving up with {plain} / {api_key}")


@task
def ticking_step(seconds: float, child_seconds: float = 0.0) -> int:
    """Writes a `tick` ledger line every 0.05 s for `seconds`: the attempt's activity, so the
    checker sees exactly when a killed or fenced attempt stopped. With `child_seconds`, first
    starts a child process that leaves the process group (setsid) and ticks on its own, to prove
    that nothing of a run outlives it."""
    from sluice.engine.context import task_run_ctx

    index = int(task_run_ctx.get().task_run.name.rsplit("-", 1)[1])
    record("step-begin", index)
    if child_seconds:
        import subprocess
        import sys

        subprocess.Popen([sys.executable, "-c", _CHILD, _ledger_path or "", _attempt,
                          str(child_seconds)], start_new_session=True)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        record("tick", index)
        time.sleep(0.05)
    return index


_CHILD = """
import os, sys, time
ledger, attempt, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
end = time.monotonic() + seconds
while time.monotonic() < end:
    line = (f"child {os.environ.get('SLUICE_FLOW_RUN_ID', '?')} {attempt} "
            f"{(os.environ.get('SLUICE_LEASE') or '-')[-8:]} - {os.getpid()} {os.getppid()} "
            f"{time.time():.6f}\\n")
    fd = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(fd, line.encode())
    os.close(fd)
    time.sleep(0.05)
"""


@flow(persist_result=True)
def fenced_flow(ledger: str, steps: int = 4, step_seconds: float = 2.0,
                child_seconds: float = 0.0) -> int:
    """`steps` ticking tasks (persisted: a retry resumes after the last completed one)."""
    _begin(ledger)
    total = sum(ticking_step(step_seconds, child_seconds if i == 0 else 0.0)
                for i in range(steps))
    record("flow-end")
    return total
