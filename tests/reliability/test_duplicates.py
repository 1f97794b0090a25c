"""Scenario 4: every run message is delivered three times (two extra copies of each message are
sent to the pool's queue with boto3, through the embedded SQS endpoint); each flow body runs
once, and every copy ends deleted."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from e2e.harness import wait_for
from sluice.models import RunMessage

from .driver import (
    Figures,
    Ledger,
    StuckWatch,
    chaos_runs,
    chaos_workers,
    wait_all_terminal,
)
from .invariants import check_runs

pytestmark = [pytest.mark.reliability, pytest.mark.e2e]


def sqs_client(inst):  # noqa: ANN001, ANN201
    import boto3

    return boto3.client("sqs", endpoint_url=f"{inst.url}/sqs", region_name="us-east-1",
                        aws_access_key_id="sluice", aws_secret_access_key=inst.token)


def test_every_message_three_times_runs_each_body_once(installation, tmp_path, seed, rng):
    started = time.monotonic()
    inst = installation
    n_runs, n_workers = chaos_runs(12), chaos_workers(2)
    ref = inst.deploy("chaos_flow", "dup")
    ledger = Ledger(tmp_path / "ledger")
    runs = [inst.trigger(ref, ledger=str(ledger), steps=2, step_seconds=0.1)
            for _ in range(n_runs)]
    sqs = sqs_client(inst)
    url = sqs.get_queue_url(QueueName="default")["QueueUrl"]
    copies = []
    with inst.reader() as api:
        for run_id in runs:
            run = api.run(run_id)
            body = RunMessage(flow_run_id=run_id, pool="default", attempt=0,
                              scheduled_at=run["scheduled_at"]).model_dump_json()
            copies += [body, body]
    rng.shuffle(copies)  # the copies arrive in a seeded order, interleaved with the originals
    for body in copies:
        sqs.send_message(QueueUrl=url, MessageBody=body)
    assert int(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"][
        "ApproximateNumberOfMessages"]) == 3 * n_runs
    # Several slots per worker: copies of one run can land in one worker's batch.
    for i in range(n_workers):
        inst.start_worker(name=f"w{i}", limit=3)
    with StuckWatch(inst.url, inst.token, inst.heartbeat_timeout) as watch:
        wait_all_terminal(inst, runs, timeout=60 + 4 * n_runs)
    assert not watch.stuck, watch.stuck
    with inst.api() as http:
        wait_for(lambda: http.get("/pools/default").json()["queue_depth"] == 0, 30,
                 "every copy to be deleted")
        dead = http.get("/pools/default").json()["dlq_depth"]
    with inst.reader() as api:
        findings = check_runs(api, runs, ledger=ledger)
        starts = Counter(e.run_id for e in ledger.entries() if e.event == "flow-start")
        beginnings = {run_id: sum("Beginning flow run" in line["message"]
                                  for line in api.logs(run_id)) for run_id in runs}
    twice = {r: n for r, n in starts.items() if n != 1}
    extra_processes = {r: n for r, n in beginnings.items() if n != 1}
    Figures("4 every message x3", seed, runs=n_runs, workers=n_workers,
            crashes_injected=2 * n_runs, retries=findings.retries, lost=len(findings.lost),
            duplicated=len(findings.duplicated) + sum(n - 1 for n in twice.values()),
            seconds=time.monotonic() - started,
            notes={"extra_copies": 2 * n_runs, "dead_lettered": dead,
                   "extra_flow_processes": sum(n - 1 for n in extra_processes.values())}
            ).save()
    findings.assert_clean(seed)
    assert set(starts) == set(runs) and not twice, f"seed {seed}: bodies run twice: {twice}"
    assert all(r["run_count"] == 1 for r in findings.runs_by_id.values())
    # A copy is dropped before anything starts: no second flow process even began the run.
    assert not extra_processes, f"seed {seed}: runs started twice: {extra_processes}"
    assert dead == 0
