"""The process a worker starts for one flow run: `python -m sluice_worker.execute`.

It reads the run id, lease and entrypoint from its environment, adopts the run the control
plane created, runs the flow with the HTTP reporter and exits. Exit code 0 means a final state
was reported; anything else tells the worker the run crashed.
"""

from __future__ import annotations

import os
import sys

ENV_FLOW_RUN_ID = "SLUICE_FLOW_RUN_ID"
ENV_LEASE = "SLUICE_LEASE"
ENV_ENTRYPOINT = "SLUICE_ENTRYPOINT"
ENV_FLOW_RUN = "SLUICE_FLOW_RUN"  # the claimed run (see claim_started)
EXIT_REPORTED = 0
EXIT_NOT_REPORTED = 70  # EX_SOFTWARE: the final state could not be reported
#: How long start-up calls ride out an unreachable control plane (the reporter's transitions
#: are retried as long).
PATIENCE_SECONDS = 120.0


def main() -> int:
    from .lean_imports import import_httpx_without_its_cli

    import_httpx_without_its_cli()  # before the client imports it (a no-op after `standby`)
    from sluice.client import get_client
    from sluice.client.transport import retry_transient
    from sluice.engine import run_flow
    from sluice.entrypoints import load_flow
    from sluice.exceptions import SluiceError
    from sluice.models import Failed, new_id

    from .fence import Fence

    flow_run_id, lease = os.environ[ENV_FLOW_RUN_ID], os.environ[ENV_LEASE]
    # First of all: this process stops itself when its worker stops renewing the lease.
    fence = Fence.from_environment(flow_run_id, lease)
    if fence is not None:
        fence.start()
    from .claim_started import claimed_flow_run, reporter_for

    client = get_client()
    # The run as the worker's claim answered it (no request), else read from the control
    # plane: a control plane that is briefly unreachable delays the start instead of crashing.
    claimed = claimed_flow_run(flow_run_id)
    os.environ.pop(ENV_FLOW_RUN, None)  # not for the processes the flow starts
    flow_run = claimed or retry_transient(lambda: client.get_flow_run(flow_run_id),
                                          PATIENCE_SECONDS, what=f"reading flow run {flow_run_id}")
    reporter = reporter_for(client, flow_run, from_claim=claimed is not None)
    reporter.adopted.add(flow_run_id)
    reporter.leases[flow_run_id] = lease
    if fence is not None:
        reporter.local_leases[flow_run_id] = fence.lease
    from sluice.models import LogLevel

    from .streams import RunOutput

    # stdout goes only to the run's logs; stderr also to the pipe, where the worker keeps the
    # last lines for the message of a run whose process dies.
    out = RunOutput(reporter, flow_run_id, "stdout", LogLevel.INFO, None)
    err = RunOutput(reporter, flow_run_id, "stderr", LogLevel.WARNING, sys.stderr)
    sys.stdout, sys.stderr = out, err  # type: ignore[assignment]

    def fail_before_start(message: str) -> int:
        """The run cannot start through its own fault (not a crash): report it Failed."""
        print(message, file=sys.stderr)
        try:
            client.set_flow_run_state(flow_run_id, Failed(message), new_id(), lease=lease)
        except SluiceError:
            return EXIT_NOT_REPORTED
        return EXIT_REPORTED

    try:
        flow = load_flow(os.environ[ENV_ENTRYPOINT], os.getcwd())
    except Exception as exc:  # a broken entrypoint is the run's failure, not a crash
        return fail_before_start(
            f"could not load {os.environ[ENV_ENTRYPOINT]}: {type(exc).__name__}: {exc}")
    try:
        # Secret parameters arrive as references ({"$secret": name}): read them here, in the
        # user's account, so their values never pass through the control plane.
        from sluice.secrets import resolve_references

        parameters = resolve_references(flow_run.parameters, flow=flow)
    except SluiceError as exc:
        return fail_before_start(f"could not read a secret parameter: {exc}")
    state = run_flow(flow, parameters, reporter=reporter, flow_run=flow_run)
    if fence is not None and fence.lease.lost is not None:
        # The engine stopped the run for a lost lease: nothing of this attempt may go on (or
        # claim it reported a final state it did not).
        fence.stop(fence.lease.lost)
    out.close_lines()
    err.close_lines()
    reporter.close(timeout=30)
    return EXIT_REPORTED if state.is_terminal else EXIT_NOT_REPORTED


def standby() -> int:
    """Wait, imports done, for the run this process will execute: the worker starts one
    ahead of time so a run does not pay for starting Python and importing Sluice (~0.3 s).
    The first stdin line is the run's JSON `{"env": {...}, "cwd": "..."}`."""
    import json

    from .lean_imports import import_httpx_without_its_cli

    import_httpx_without_its_cli()  # ~5 MiB less for each idle worker (lean_imports)
    import sluice.client.reporter  # noqa: F401 - the imports are the point of waiting here
    import sluice.engine  # noqa: F401
    import sluice.entrypoints  # noqa: F401

    from .fence import die_with_parent
    from .processes import ENV_LEASE_FD, ENV_WORKER_PID

    die_with_parent()
    line = sys.stdin.readline()
    if not line.strip():
        return 0  # the worker stopped without using this process
    order = json.loads(line)
    kept = {name: os.environ[name] for name in (ENV_LEASE_FD, ENV_WORKER_PID)
            if name in os.environ}  # this process's own pipe, not the run's
    os.environ.clear()
    os.environ.update(order["env"])
    os.environ.update(kept)
    os.chdir(order["cwd"])
    settings = sys.modules.get("sluice.settings")  # loaded on first use: the run's environment
    if settings is not None:
        settings.get_settings.cache_clear()
    return main()


if __name__ == "__main__":
    sys.exit(standby() if sys.argv[1:] == ["--standby"] else main())
