"""Scenario 8: secrets. A deployment's `SecretStr` parameter travels as a reference to the
secret store and is shown as that reference; `sluice.secret(name)` reads a value in the flow's
process; a flow that prints, logs, writes to stderr, fails a task with, and raises its secrets
leaves no trace of them in stored state, logs, API answers, CLI output, the server's files or the
worker's log - only masks. A plain value for a secret parameter is refused (422), and a script
run's SecretStr parameter is stored masked."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import httpx
import pytest

from .driver import Figures, Ledger
from .invariants import check_runs

pytestmark = [pytest.mark.reliability, pytest.mark.e2e]
MASK = "**********"

SCRIPT = '''
from pydantic import SecretStr
from sluice import flow, get_run_logger

@flow(log_prints=True)
def login(user: str, token: SecretStr) -> str:
    print(f"logging in {user} with {token.get_secret_value()}")
    get_run_logger().info("token=%s", token.get_secret_value())
    return "ok"

if __name__ == "__main__":
    import sys
    print(login("ana", sys.argv[1]))
'''


def everything_visible(inst, run_id: str) -> dict[str, str]:  # noqa: ANN001
    """What anyone can see of a run: every API answer about it, the CLI's views."""
    seen: dict[str, str] = {}
    with httpx.Client(base_url=inst.url, timeout=30,
                      headers={"authorization": f"Bearer {inst.token}"}) as http:
        for path in (f"/flow-runs/{run_id}", f"/flow-runs/{run_id}/history",
                     f"/flow-runs/{run_id}/task-runs", f"/flow-runs/{run_id}/logs?limit=200",
                     "/flow-runs?limit=200", "/deployments", "/pools/default"):
            answer = http.get(path)
            assert answer.status_code == 200, (path, answer.text)
            seen[f"GET {path}"] = answer.text
    for args in (("flow-run", "inspect", run_id), ("flow-run", "inspect", run_id, "--json"),
                 ("flow-run", "logs", run_id), ("flow-run", "ls", "--json"),
                 ("deployment", "inspect", "secret-flow/leaky", "--json")):
        seen[f"sluice {' '.join(args)}"] = inst.cli(*args).stdout
    return seen


def files_containing(root: Path, needles: list[bytes]) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path}: {n[:6]!r}..." for n in needles if n in data]
    return found


def test_secrets_are_read_at_run_time_and_never_shown(installation, tmp_path, seed, rng):
    started = time.monotonic()
    inst = installation
    password = f"pw-{rng.getrandbits(64):016x}"
    api_key = f"key-{rng.getrandbits(64):016x}"
    for name, value in (("db-password", password), ("team/api-key", api_key)):
        done = __import__("subprocess").run(
            [*__import__("e2e.harness", fromlist=["SLUICE"]).SLUICE, "secret", "set", name],
            input=value, env=inst.env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert value not in done.stdout + done.stderr
    stored = inst.home / "secrets" / "db-password"
    assert stored.read_text() == password and stored.stat().st_mode & 0o777 == 0o600
    ref = inst.deploy("secret_flow", "leaky")
    ledger = Ledger(tmp_path / "ledger")

    # A plain value for the SecretStr parameter is refused before anything is stored.
    with inst.api() as http:
        refused = http.post("/deployments/secret-flow/leaky/runs", json={"parameters": {
            "ledger": str(ledger), "password": password, "secret_name": "team/api-key"}})
    assert refused.status_code == 422, refused.text
    assert "secret" in refused.json()["message"] and password not in refused.text
    by_cli = inst.cli("deployment", "run", "secret-flow/leaky", f"--param=password={password}",
                      f"--param=ledger={ledger}", "--param=secret_name=x", check=False)
    assert by_cli.returncode == 2 and password not in by_cli.stdout + by_cli.stderr

    run_id = inst.trigger(ref, ledger=str(ledger), password={"$secret": "db-password"},
                          secret_name="team/api-key")
    worker = inst.start_worker(name="keeper")
    final = inst.wait_terminal(run_id, 90)
    # The flow raised on purpose: Failed, with the secrets masked in the reason.
    assert final["state"]["type"] == "FAILED", final
    assert final["state"]["message"] == f"RuntimeError: giving up with {MASK} / {MASK}"
    assert final["parameters"]["password"] == {"$secret": "db-password"}
    got = [e.step for e in ledger.entries() if e.event == "got"]
    assert got == [hashlib.sha256(v.encode()).hexdigest()[:16] for v in (password, api_key)]

    with inst.reader() as api:
        check_runs(api, [run_id], ledger=ledger, expect={"FAILED"}).assert_clean(seed)
    seen = everything_visible(inst, run_id)
    leaks = [where for where, text in seen.items() if password in text or api_key in text]
    logs = seen[f"GET /flow-runs/{run_id}/logs?limit=200"]
    task_runs = json.loads(seen[f"GET /flow-runs/{run_id}/task-runs"])["items"]
    # What the flow leaked is there, masked: print, logger, stderr, the failed task, the raise.
    assert f"password is {MASK} and the api key is {MASK}" in logs
    assert f"logging the api key {MASK} and password {MASK}" in logs
    assert f"stderr copy: {MASK}" in logs
    assert any(t["state"]["message"] == f"ValueError: the task saw {MASK}" for t in task_runs)

    # A script run (no deployment) with a plain SecretStr value: stored masked.
    script = tmp_path / "login.py"
    script.write_text(SCRIPT)
    token = f"tok-{rng.getrandbits(64):016x}"
    ran = inst.python(script, token)
    assert ran.returncode == 0 and "ok" in ran.stdout, ran.stderr
    assert token not in ran.stdout + ran.stderr  # the console copy is masked too
    with httpx.Client(base_url=inst.url, timeout=30,
                      headers={"authorization": f"Bearer {inst.token}"}) as http:
        (script_run,) = [r for r in http.get("/flow-runs?limit=200").json()["items"]
                         if r["flow_name"] == "login"]
        script_logs = http.get(f"/flow-runs/{script_run['id']}/logs").text
    assert script_run["parameters"] == {"user": "ana", "token": MASK}
    assert f"logging in ana with {MASK}" in script_logs and token not in script_logs

    worker.stop()
    inst.stop_server()  # flush everything to the files, then read them raw
    needles = [v.encode() for v in (password, api_key, token)]
    in_files = files_containing(inst.home / "server", needles)
    in_worker_log = [n for n in needles if n in worker.log_path.read_bytes()]
    Figures("8 secrets", seed, runs=2, workers=1, crashes_injected=0, lost=0,
            duplicated=0, seconds=time.monotonic() - started,
            notes={"places_checked": len(seen) + 2, "leaks": len(leaks) + len(in_files)}
            ).save()
    assert not leaks, f"secrets shown by: {leaks}"
    assert not in_files, f"secrets stored in: {in_files}"
    assert not in_worker_log, "the worker's log shows a secret"
