"""`make demo`: the whole path on this machine, from a fresh clone.

Starts the embedded control plane and a worker, creates a pool, deploys the example flows,
triggers them, watches them finish, prints what happened, stops everything, exits 0.
Everything lives in a temporary SLUICE_HOME, so your own ~/.sluice is not touched.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
console = Console(width=110)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "sluice.cli", *args], env=env,
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def wait_healthy(profiles: Path, timeout: float = 60):  # noqa: ANN201
    """A client of the local server, once it answers (through the profile it writes)."""
    from sluice.client import get_client
    from sluice.settings import get_settings

    deadline = time.monotonic() + timeout
    while True:
        try:
            if not profiles.exists():
                raise FileNotFoundError(profiles)
            get_settings.cache_clear()
            client = get_client()
            client.health()
            return client
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def main() -> int:
    home = Path(tempfile.mkdtemp(prefix="sluice-demo-"))
    os.environ["SLUICE_HOME"] = str(home)
    for var in ("SLUICE_API_URL", "SLUICE_PROFILE", "SLUICE_API_TOKEN"):
        os.environ.pop(var, None)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    port = free_port()

    from sluice.deployments import deploy_flow
    from sluice.entrypoints import load_flow
    from sluice.models import DeploymentRunRequest, PoolCreate

    console.rule("[bold]Sluice demo")
    console.print(f"SLUICE_HOME={home}")
    server = start(["server", "start", "--port", str(port)], env, home / "server.log")
    processes = [server]
    try:
        # The server writes the `local` profile (0600, with the token it made) once it is up.
        client = wait_healthy(home / "profiles.toml")
        console.print(f"1. control plane up at {client.connection.api_url} "
                      "(API + SQS endpoint + timers, SQLite under SLUICE_HOME)")
        client.create_pool(PoolCreate(name="demo", concurrency_limit=4))
        console.print("2. pool 'demo' created (queue + dead-letter queue)")
        deployments = {}
        for entrypoint, name in (("etl.py:orders_etl", "nightly"),
                                 ("failing.py:strict_import", "strict")):
            flow = load_flow(entrypoint, HERE)
            d = deploy_flow(flow, name=name, pool="demo", project_dir=HERE,
                            entrypoint=entrypoint, client=client)
            deployments[entrypoint] = d
            console.print(f"3. deployed {d.flow_name}/{d.name} (source: local {HERE})")
        worker = start(["worker", "start", "--pool", "demo", "--name", "demo-worker",
                        "--poll-wait", "5"], env, home / "worker.log")
        processes.append(worker)
        console.print("4. worker 'demo-worker' polling pool 'demo' (outbound calls only)")
        runs = [
            client.run_deployment("orders-etl/nightly", DeploymentRunRequest(
                parameters={"pages": 8})),
            client.run_deployment("strict-import/strict", DeploymentRunRequest(
                parameters={"rows": [{"amount": 12}, {"amount": -3}]})),
        ]
        console.print(f"5. triggered {len(runs)} runs; watching…")
        deadline = time.monotonic() + 120
        final = {}
        while len(final) < len(runs) and time.monotonic() < deadline:
            for run in runs:
                current = client.get_flow_run(run.id)
                if current.state.is_terminal:
                    final[run.id] = current
            time.sleep(0.2)
        if len(final) < len(runs):
            console.print("[red]runs did not finish in time; see the logs in SLUICE_HOME")
            return 1
        summarize(client, list(final.values()))
        etl, strict = final[runs[0].id], final[runs[1].id]
        ok = etl.state.is_completed() and strict.state.is_failed()
        console.print("[green]demo finished as expected[/green]" if ok else
                      "[red]unexpected outcome[/red]")
        return 0 if ok else 1
    finally:
        for process in reversed(processes):
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        console.print("6. worker and control plane stopped")


def summarize(client, runs) -> None:  # noqa: ANN001
    table = Table(title="Flow runs", title_justify="left")
    for column in ("flow", "run", "state", "duration", "task runs", "retried"):
        table.add_column(column, no_wrap=True)
    for run in runs:
        tasks = client.all_task_runs(run.id)
        table.add_row(run.flow_name, run.name or "-", run.state.name,
                      f"{run.duration_seconds:.2f} s" if run.duration_seconds else "-",
                      str(len(tasks)), str(sum(t.run_count > 1 for t in tasks)))
    console.print(table)
    for run in runs:
        if run.state.message:
            console.print(f"{run.flow_name} ended {run.state.name}: {run.state.message}",
                          highlight=False, markup=False)
    for run in runs:
        console.print(f"[bold]{run.flow_name}[/bold] log excerpt:")
        for line in client.read_logs(run.id, limit=8).items:
            console.print(f"  {line.timestamp.astimezone():%H:%M:%S.%f}"[:-3]
                          + f" {line.level.value:<7} {line.message.splitlines()[0][:90]}",
                          highlight=False, markup=False)


if __name__ == "__main__":
    sys.exit(main())
