"""Scenario 7c: random valid, extreme and corrupt values stored in every field of runs and
deployments, then the scheduler and monitor ticks and every route over them.

The records are written straight into the SQLite store (its tables, as bad legacy data or a
record written by another version would sit there: no API, no model validation): times at the
calendar's edges (year 1 at +14:00 has no UTC equivalent, year 9999 at -12:00), naive times,
zero, negative, huge and infinite numbers, 10,000-character and unicode strings, every state
type and odd names, leases with and without heartbeats, holds with broken details, schedules
that never fire or overflow, unknown time zones, and documents that no longer validate at all.

Then, in-process on the API app (`build_app`) over the real SQLite adapters: scheduler and
monitor ticks at several times (no exception may escape a tick), and every route of
`tests/functions/api/test_fuzz_routes.py`'s ROUTES that names a run or a deployment, called on
each record with plausible bodies (its lease, random states), plus the list routes: no answer
may be a 5xx. After the last tick (a year on) no readable run may still hold a live attempt
whose lease expired: the monitor must have crashed or retried every one, however odd its other
values. Failures are collected with the record that caused them, then asserted.

Size: SLUICE_FUZZ_EXAMPLES worlds (default 2 in `make test`, 150 in `make chaos`), each with
`RUNS_PER_WORLD` runs and `DEPLOYMENTS_PER_WORLD` deployments; the seed is
SLUICE_CHAOS_SEED or random, printed to replay.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import sys
import time
import traceback
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from sluice.models import FlowRun, StateType
from sluice_functions.adapters import records
from sluice_functions.adapters.memory_metrics import InMemoryMetrics
from sluice_functions.adapters.sqlite.store_sql import flow_run_row
from sluice_functions.api import build_app
from sluice_functions.isolation import TICK_RECORD_ERRORS
from sluice_functions.monitoring import monitor_runs
from sluice_functions.monitoring.monitor import LIVE_STATE_TYPES, last_sign_of_life
from sluice_functions.orchestration import LeasePolicy, holds_live_attempt
from sluice_functions.service.lifecycle import lease_outlives
from sluice_functions.scheduling import schedule_deployments

from .driver import Figures

pytestmark = [pytest.mark.reliability]

_API_TESTS = Path(__file__).parents[1] / "functions"
if str(_API_TESTS) not in sys.path:
    sys.path.insert(0, str(_API_TESTS))
from api.conftest import NOW, Api, Clock, close_ports, sqlite_ports  # noqa: E402
from api.test_fuzz_routes import ROUTES  # noqa: E402 - the route list the API tests keep

RUNS_PER_WORLD = 30
DEPLOYMENTS_PER_WORLD = 8
#: How far the clock moves between the ticks of one world (seconds): a heartbeat timeout, an
#: hour, a day past a retry delay's bound, a leap year.
CLOCK_STEPS = [0, 45, 3_600, 8 * 86_400, 367 * 86_400]
HEARTBEAT_TIMEOUT = 30

# ---- values ---------------------------------------------------------------------------------------

# Values each field's type accepts, extreme ones included (the record still reads).
TIMES = [
    "0001-01-01T00:00:00Z", "0001-01-01T00:00:00+14:00", "0001-01-01T23:59:59-12:00",
    "9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:59-12:00", "9999-12-31T00:00:00+14:00",
    "1970-01-01T00:00:00Z", "2024-05-01T12:00:00",  # naive
    "2024-05-01T11:59:00Z", "2024-05-01T12:00:00.000001+00:00", "2024-04-30T12:00:00Z",
    "2024-05-01T12:30:00+05:30", "2014-05-01T12:00:00Z", "2124-05-01T12:00:00Z", None,
]
#: "Infinity"/"NaN" are written as the bare JSON tokens Python's json module emits for them.
FLOATS: list[Any] = [0, 0.0, -1, -1e308, 1e-300, 0.5, 30, 604_800, 604_801, 1e12, 1e15, 1e308,
                     2**63, 10**30, "Infinity", "-Infinity", "NaN"]
INTS: list[Any] = [0, 1, 3, -1, 1000, 1001, 2**31, 2**63 - 1, 2**63, 10**30, -(10**30)]
#: `version` is the store's own compare-and-set counter, kept in an indexed column too: only
#: values a store can have written (the column is SQLite's 64-bit integer, and a write adds 1).
VERSIONS: list[Any] = [0, 1, 3, -1, 2**31, 2**62]
STRINGS: list[Any] = ["", " ", "etl", "x" * 10_000, "日本語🚀", "\u202e", "\x00", "../..",
                      "a/b", "%2F", "\\ud800"]
STATE_NAMES = ["", "Scheduled", "Late", "AwaitingRetry", "Pending", "Running", "Retrying",
               "Paused", "Cancelling", "Cancelled", "Completed", "Cached", "Failed", "TimedOut",
               "Crashed", "Weird", "x" * 300]
DETAILS: list[Any] = [
    None, {}, {"held_by": "schedule", "schedule": "k"}, {"held_by": "schedule", "schedule": None},
    {"held_by": "backfill", "backfill_id": "b1", "max_active": 2},
    {"held_by": "backfill", "backfill_id": "b1", "max_active": "x"},
    {"held_by": "backfill", "backfill_id": "b1", "max_active": -5},
    {"held_by": "backfill", "backfill_id": "b1", "max_active": 1e308},
    {"held_by": "backfill", "backfill_id": "b1", "max_active": "Infinity"},
    {"held_by": 5}, {"held_by": ""}, {"x": [[[[[[[[]]]]]]]]}, {"exit_code": -9},
]
TAGS: list[Any] = [[], ["backfill:b1"], ["backfill:"], ["auto-scheduled", "backfill:b2"],
                   [f"t{i}" for i in range(100)], [""], ["x" * 5_000]]
PARAMETERS: list[Any] = [{}, {"a": 1}, {"s": {"$secret": "db/password"}}, {"n": [[[[[[]]]]]]},
                         {"big": "y" * 70_000}, {"": None}, {"f": "NaN"}, {"i": 10**30}]
CRONS = ["0 2 * * *", "*/1 * * * *", "0 0 30 2 *", "bad", "0 2 * * * *", "* * * * *",
         "0 0 1 1 *", "59 23 31 12 *", "", "cron(0 2 * * ? *)"]
INTERVALS: list[Any] = [1, 60, 86_400, 7 * 86_400, 1e-9, 1e-300, 1e12, 1e308, 31_622_400, 0.5,
                        86_400 * 10**9, "Infinity"]
ZONES: list[Any] = ["UTC", "Europe/Berlin", "Pacific/Kiritimati", "Etc/GMT+12", "Not/AZone", "",
                    "../etc/passwd", "America/New_York"]
POOLS: list[Any] = ["etl", "missing-pool", "zero", "huge", "BAD POOL", "", None]
#: What a corrupted field holds instead (the record no longer validates as its model).
CORRUPT: list[Any] = [None, 7, "x", [], {}, 1.5, "NaN", [None], {"type": "BOGUS"}]
#: Share of records with one or two corrupted or missing fields.
CORRUPT_SHARE = 0.2


@dataclass
class World:
    """One store full of fuzzed records, the app over it, and what was planted."""

    api: Api
    rng: random.Random
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    deployments: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class Tally:
    records: int = 0
    extreme: int = 0
    ticks: int = 0
    ticks_aborted: int = 0
    routes: int = 0
    server_errors: int = 0
    record_errors: int = 0
    stuck: int = 0
    kept_by_lease_expiry: int = 0
    failures: list[str] = field(default_factory=list)

    def fail(self, what: str) -> None:
        if len(self.failures) < 40:
            self.failures.append(what)


def pick(rng: random.Random, values: list[Any], usual: Any, p_usual: float = 0.6) -> Any:
    """`usual` most of the time (so records stay close enough to real ones to reach deep
    code), else any of `values`."""
    return usual if rng.random() < p_usual else rng.choice(values)


def ts(rng: random.Random, usual: str | None = "2024-05-01T11:59:00Z") -> Any:
    return pick(rng, TIMES, usual)


def corrupt(rng: random.Random, record: dict[str, Any]) -> dict[str, Any]:
    """With `CORRUPT_SHARE` odds: one or two fields replaced by a value of the wrong type, or
    dropped (a field an older version did not write)."""
    if rng.random() >= CORRUPT_SHARE:
        return record
    for name in rng.sample(sorted(set(record) - {"id"}), k=rng.choice([1, 2])):
        if rng.random() < 0.3:
            del record[name]
        elif name == "state" and rng.random() < 0.5:
            record["state"] = {**record["state"], rng.choice(sorted(record["state"])):
                               rng.choice(CORRUPT)}
        else:
            record[name] = rng.choice(CORRUPT)
    return record


# ---- records ----------------------------------------------------------------------------------


def fuzzed_run(rng: random.Random, deployment_ids: list[str], *,
               corrupted: bool = True) -> dict[str, Any]:
    leased = rng.random() < 0.5
    run: dict[str, Any] = {
        "id": uuid.UUID(int=rng.getrandbits(128)).hex,
        "flow_name": pick(rng, STRINGS, "etl", 0.8),
        "name": pick(rng, [*STRINGS, None], "brave-otter"),
        "deployment_id": pick(rng, [None, "missing", *deployment_ids],
                              rng.choice(deployment_ids) if deployment_ids else None),
        "pool": pick(rng, POOLS, "etl"),
        "state": {
            "type": rng.choice([t.value for t in StateType]),
            "name": pick(rng, STATE_NAMES, ""),
            "timestamp": pick(rng, [t for t in TIMES if t], "2024-05-01T11:59:00Z"),
            "message": pick(rng, [*STRINGS, None], None),
            "scheduled_time": ts(rng),
            "details": pick(rng, DETAILS, None),
        },
        "parameters": pick(rng, PARAMETERS, {}),
        "tags": pick(rng, TAGS, []),
        "scheduled_at": ts(rng, "2024-05-01T11:59:30Z"),
        "start_time": ts(rng, None),
        "end_time": ts(rng, None),
        "run_count": pick(rng, INTS, 1),
        "retries": pick(rng, INTS, 2),
        "retry_delay_seconds": pick(rng, FLOATS, 10),
        "parent_flow_run_id": pick(rng, [*STRINGS, None], None, 0.8),
        "parent_task_run_id": pick(rng, [*STRINGS, None], None, 0.8),
        "worker_pool": pick(rng, [*STRINGS, None], None, 0.8),
        "idempotency_key": pick(rng, [None, "k", "x" * 300, "日本"], None, 0.7),
        "created_by": pick(rng, [*STRINGS, None], "alice"),
        "created": ts(rng, "2024-05-01T11:00:00Z"),
        "updated": ts(rng, "2024-05-01T11:00:00Z"),
        "worker": pick(rng, [*STRINGS, None], "w1" if leased else None),
        "heartbeat_at": ts(rng, "2024-05-01T11:59:50Z" if leased else None),
        "version": pick(rng, VERSIONS, 3, 0.8),
        "lease": pick(rng, ["", "lease-" + "x" * 300, None], f"lease-{rng.randrange(10**9)}"
                      if leased else None, 0.8),
        "claim_id": pick(rng, [*STRINGS, None], None, 0.8),
        "lease_expires_at": ts(rng, "2024-05-01T12:01:20Z" if leased else None),
        "ended_lease": pick(rng, [*STRINGS, None], None, 0.8),
        "lease_session": pick(rng, [*STRINGS, None], None, 0.8),
        "enqueued_at": ts(rng, None),
        "slot_scopes": pick(rng, [[], ["deployment"], ["pool", "pool"], ["bogus"]], []),
    }
    return corrupt(rng, run) if corrupted else run


def fuzzed_schedule(rng: random.Random) -> dict[str, Any]:
    cron = rng.random() < 0.5
    return {
        "id": pick(rng, [None, "", "s1", "x" * 300], None, 0.7),
        "cron": pick(rng, CRONS, "*/1 * * * *") if cron else None,
        "interval_seconds": None if cron else pick(rng, INTERVALS, 60),
        "anchor": None if cron else ts(rng, None),
        "timezone": pick(rng, ZONES, "UTC"),
        "parameters": pick(rng, PARAMETERS, {}),
        "active": rng.random() < 0.9,
    }


def fuzzed_deployment(rng: random.Random, index: int, *,
                      corrupted: bool = True) -> dict[str, Any]:
    deployment = {
        "id": uuid.UUID(int=rng.getrandbits(128)).hex,
        "flow_name": "etl",
        "name": f"d{index}-" + pick(rng, ["日本語🚀", "x" * 200, "a b"], "n", 0.8),
        "entrypoint": pick(rng, [s for s in STRINGS if s], "flows.py:etl", 0.8),
        "pool": pick(rng, ["etl", "missing-pool", "zero", "huge"], "etl"),
        "parameters": pick(rng, PARAMETERS, {}),
        "parameter_schema": pick(rng, [{}, {"type": "object", "required": ["a"]},
                                       {"type": "bogus"}, {"$ref": "#/nowhere"}], {}),
        "tags": pick(rng, TAGS, []),
        "description": pick(rng, [*STRINGS, None], None),
        "version": pick(rng, [*STRINGS, None], None),
        "source": pick(rng, [{"kind": "git"}, {"kind": "bundle"}, {}], {"kind": "local"}),
        "schedules": [fuzzed_schedule(rng) for _ in range(rng.choice([0, 1, 1, 2, 3]))],
        "paused": rng.random() < 0.2,
        "concurrency_limit": pick(rng, [*INTS, None], None),
        "collision_strategy": pick(rng, ["cancel_new"], "enqueue"),
        "retries": pick(rng, INTS, 1),
        "retry_delay_seconds": pick(rng, FLOATS, 10),
        "catchup": rng.random() < 0.5,
        "max_lateness_seconds": pick(rng, [*FLOATS, None], None),
        "timeout_seconds": pick(rng, [*FLOATS, None], None),
        "created": ts(rng, "2024-04-01T00:00:00Z"),
        "updated": ts(rng, "2024-04-30T00:00:00Z"),
        "created_by": pick(rng, [*STRINGS, None], "alice"),
        "on_event": pick(rng, [{"pattern": {"source": ["aws.s3"]},
                                "parameters": {"key": "{{ event.detail.key }}"}},
                               {"pattern": {"detail": {"size": [{"numeric": [">", 0]}]}},
                                "parameters": {}}], None),
        "triggers": pick(rng, [[{"trigger": {"type": "reactive",
                                             "match": {"names": ["etl.loaded"]}},
                                 "actions": [{"type": "run-deployment"}]}]], []),
    }
    return corrupt(rng, deployment) if corrupted else deployment


def as_json(value: Any) -> str:
    """JSON as a legacy writer may have left it: the strings "Infinity"/"NaN" become the bare
    non-standard tokens Python's json writes for float('inf'), and the strings written with
    escapes above (a lone surrogate, a NUL, a bidi override) become those escapes."""
    text = json.dumps(value, ensure_ascii=False)
    for token in ("-Infinity", "Infinity", "NaN"):
        text = text.replace(f'"{token}"', token)
    for escape in ("ud800", "u202e", "x00"):
        text = text.replace("\\\\" + escape, "\\u0000" if escape == "x00" else "\\" + escape)
    return text


def plant(world: World, tally: Tally) -> None:
    """Write the world's records straight into the store's tables."""
    rng, store = world.rng, world.api.ports.store.adapter
    for name, limit in (("etl", None), ("zero", 0), ("huge", 10**30)):
        doc = json.dumps({"name": name, "concurrency_limit": limit,
                          "created": "2024-01-01T00:00:00Z"})
        with store._db.write() as conn:
            conn.execute("INSERT OR REPLACE INTO pools (name, doc) VALUES (?, ?)", (name, doc))
        world.api.ports.queue.adapter.create_pool_queue(name)  # "missing-pool" has none
    for index in range(DEPLOYMENTS_PER_WORLD):
        deployment = fuzzed_deployment(rng, index)
        with store._db.write() as conn:
            name = deployment.get("name")
            conn.execute("INSERT INTO deployments (id, flow_name, name, doc) VALUES (?, ?, ?, ?)",
                         (deployment["id"], str(deployment.get("flow_name")),
                          name if isinstance(name, str) else f"corrupt-{index}",
                          as_json(deployment)))
        world.deployments[deployment["id"]] = deployment
    ids = list(world.deployments)
    keys: set[str] = set()
    for _ in range(RUNS_PER_WORLD):
        run = fuzzed_run(rng, ids)
        key = run.get("idempotency_key")
        if isinstance(key, str) and key in keys:
            run["idempotency_key"] = None
        keys.add(str(key))
        doc = as_json(run)
        with store._db.write() as conn:
            row = row_of(run, doc)
            conn.execute(
                "INSERT INTO flow_runs (id, flow_name, deployment_id, pool, state_type,"
                " scheduled_us, idempotency_key, version, doc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                row)
            # Its history entry, written with the run's version (as the store writes them).
            conn.execute("INSERT INTO flow_run_states (flow_run_id, version, transition_id, state)"
                         " VALUES (?, ?, ?, ?)", (run["id"], row[7], None,
                                                  as_json(run.get("state"))))
            if rng.random() < 0.3:
                task = {"id": uuid.uuid4().hex, "flow_run_id": run["id"], "task_name": "t",
                        "name": "t-0", "state": run.get("state"), "version": pick(rng, INTS, 1),
                        "start_time": ts(rng), "run_count": pick(rng, INTS, 1)}
                conn.execute("INSERT INTO task_runs (id, flow_run_id, version, doc)"
                             " VALUES (?, ?, ?, ?)", (task["id"], run["id"], 1, as_json(task)))
        world.runs[run["id"]] = run
    tally.records += len(world.runs) + len(world.deployments)
    tally.extreme += sum(1 for r in [*world.runs.values(), *world.deployments.values()]
                         if not _readable(r))


def _readable(record: dict[str, Any]) -> bool:
    try:
        (FlowRun if "state" in record else _deployment_model()).model_validate_json(
            as_json(record))
        return True
    except ValueError:
        return False


def _deployment_model():
    from sluice.models import Deployment

    return Deployment


def row_of(run: dict[str, Any], doc: str) -> tuple[Any, ...]:
    """The indexed columns of a run row, as the store derives them (best effort for a document
    that no longer parses)."""
    try:
        parsed = FlowRun.model_validate_json(doc)
        return flow_run_row(parsed, doc)
    except (ValueError, OverflowError):
        state = run.get("state") if isinstance(run.get("state"), dict) else {}
        state_type = state.get("type") if state.get("type") in [t.value for t in StateType] \
            else "RUNNING"
        key = run.get("idempotency_key") if isinstance(run.get("idempotency_key"), str) else None
        text = lambda v: v if isinstance(v, str) else None  # noqa: E731
        return (run["id"], str(run.get("flow_name")), text(run.get("deployment_id")),
                text(run.get("pool")), state_type, 0, key, 1, doc)


# ---- ticks and routes -------------------------------------------------------------------------


def tick(world: World, tally: Tally) -> None:
    ports, now = world.api.ports, world.api.clock()
    for name, job in (
        ("scheduler", lambda: schedule_deployments(store=ports.store, queue=ports.queue,
                                                   metrics=ports.metrics, now=now)),
        ("monitor", lambda: monitor_runs(store=ports.store, queue=ports.queue,
                                         metrics=ports.metrics, now=now,
                                         heartbeat_timeout=HEARTBEAT_TIMEOUT)),
    ):
        tally.ticks += 1
        try:
            job()
        except Exception:  # noqa: BLE001 - what the scenario counts
            tally.ticks_aborted += 1
            tally.fail(f"{name} tick at {now.isoformat()} aborted:\n"
                       f"{traceback.format_exc()[-3000:]}")


class LastTraceback(logging.Handler):
    """Keeps the traceback of the last log record that carried one (the API logs a 500's)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.text = ""

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.text = "".join(traceback.format_exception(*record.exc_info))[-1200:]


LAST_TRACEBACK = LastTraceback()


def short(value: Any) -> Any:
    """The record for a failure message, long strings cut."""
    if isinstance(value, str):
        return value if len(value) <= 40 else f"{value[:10]}...({len(value)} chars)"
    if isinstance(value, dict):
        return {k: short(v) for k, v in value.items()}
    if isinstance(value, list):
        return [short(v) for v in value[:5]] + (["..."] if len(value) > 5 else [])
    return value


def call(world: World, tally: Tally, method: str, path: str, body: Any = None,
         query: dict[str, Any] | None = None, record: Any = None) -> None:
    tally.routes += 1
    LAST_TRACEBACK.text = ""
    try:
        answer = world.api.call(method, path, body=body, query=query)
    except Exception:  # noqa: BLE001 - an exception out of the app is as bad as a 5xx
        tally.server_errors += 1
        tally.fail(f"{method} {short(path)} raised:\n{traceback.format_exc()}\n"
                   f"record: {short(record)!r}")
        return
    if answer.status >= 500:
        tally.server_errors += 1
        tally.fail(f"{method} {short(path)} body {short(body)!r} -> {answer.status} "
                   f"{short(answer.json)!r}\n"
                   f"{LAST_TRACEBACK.text}\nrecord: {short(record)!r}")


def run_body(template: str, run: dict[str, Any], rng: random.Random) -> Any:
    lease = run.get("lease") if rng.random() < 0.8 else "not-the-lease"
    lease = lease if isinstance(lease, str) and lease else None
    if template.endswith("/state"):
        state = {"type": rng.choice([t.value for t in StateType]),
                 "name": rng.choice(["", "Failed", "Crashed", "TimedOut", "Late", "AwaitingRetry"]),
                 "timestamp": NOW.isoformat()}
        if state["type"] == "SCHEDULED" and rng.random() < 0.5:
            state["scheduled_time"] = rng.choice(["9999-12-31T23:59:59Z", "2999-12-31T00:00:00Z",
                                                  "1970-01-01T00:00:00Z", NOW.isoformat()])
        body: dict[str, Any] = {"state": state, "transition_id": uuid.uuid4().hex}
        if lease:
            body["lease"] = lease
        if rng.random() < 0.2:
            body["expect"] = rng.choice([t.value for t in StateType])
        return body
    if template.endswith("/claim"):
        body = {"worker": rng.choice(["w1", "w2"])}
        if rng.random() < 0.5:
            body["attempt"] = rng.choice([0, 1, 2, 10**9])
        return body
    if template.endswith("/heartbeat"):
        return {"lease": lease or "x"}
    if template.endswith("/cancel"):
        return rng.choice([None, {"message": "fuzz"}])
    if template.endswith("/events"):
        body = {"task_runs": [{"id": uuid.uuid4().hex, "flow_run_id": run["id"], "task_name": "t",
                               "name": "t-0", "state": {"type": "COMPLETED",
                                                        "timestamp": NOW.isoformat()},
                               "version": 1}],
                "logs": [{"id": uuid.uuid4().hex, "flow_run_id": run["id"],
                          "timestamp": rng.choice([NOW.isoformat(), "9999-12-31T23:59:59Z"]),
                          "message": "hello"}]}
        if lease:
            body["lease"] = lease
        return body
    return None


def deployment_body(template: str, rng: random.Random) -> Any:
    if template.endswith("/backfill"):
        # Short windows: a fuzzed schedule may fire every second, and every run a backfill
        # makes is handled by each later tick (the stored values are what is fuzzed here).
        return {"start": rng.choice(["2024-04-30T22:58:00Z", "2024-04-30T22:59:30Z"]),
                "end": rng.choice(["2024-04-30T23:00:00Z", "2024-04-30T22:59:00Z"]),
                "max_active": rng.choice([None, 1, 10_000])}
    if template.endswith("/runs"):
        return rng.choice([None, {}, {"scheduled_at": "2999-12-31T00:00:00Z"},
                           {"parameters": {"a": 1}}])
    if template.startswith("/deployments/{") and rng.random() < 0.7:
        return {"paused": rng.random() < 0.5}
    return rng.choice([{"concurrency_limit": 3}, {"schedules": []}])


def visit(world: World, tally: Tally) -> None:
    """Every route that names a run or a deployment, on each record; then the lists."""
    rng = world.rng
    for run_id, run in world.runs.items():
        for method, template in ROUTES:
            if "{flow_run_id}" not in template:
                continue
            path = template.replace("{flow_run_id}", run_id)
            body = run_body(template, run, rng) if method == "POST" else None
            call(world, tally, method, path, body=body, record=run)
    for deployment_id, deployment in world.deployments.items():
        names = {"{deployment_id}": deployment_id,
                 "{flow_name}": str(deployment.get("flow_name")),
                 "{name}": str(deployment.get("name"))}
        for method, template in ROUTES:
            if not any(part in template for part in names) or method == "DELETE":
                continue
            path = template
            for part, value in names.items():
                path = path.replace(part, value.replace("/", "%2F"))
            body = deployment_body(template, rng) if method in ("POST", "PATCH") else None
            call(world, tally, method, path, body=body, record=deployment)
    lists = [("/flow-runs", {}), ("/flow-runs", {"state_type": "RUNNING,SCHEDULED"}),
             ("/flow-runs", {"pool": "etl"}), ("/flow-runs", {"flow_name": "etl", "limit": "3"}),
             ("/deployments", {}), ("/pools", {}), ("/pools/etl", {}), ("/pools/zero", {}),
             ("/pools/huge", {})]
    lists += [("/flow-runs", {"deployment_id": d}) for d in list(world.deployments)[:3]]
    for path, query in lists:
        call(world, tally, "GET", path, query=query)
    for deployment_id in rng.sample(list(world.deployments), k=2):
        call(world, tally, "DELETE", f"/deployments/{deployment_id}")


def fuzz_world(seed: int, tmp: Path, tally: Tally) -> None:
    rng = random.Random(seed)
    metrics = InMemoryMetrics()
    clock = Clock(now=NOW)
    ports = sqlite_ports(tmp, [], metrics)
    world = World(api=Api(app=build_app(ports, clock=clock), ports=ports, metrics=metrics,
                          clock=clock), rng=rng)
    try:
        plant(world, tally)
        for step, seconds in enumerate(CLOCK_STEPS):
            clock.now = NOW + timedelta(seconds=seconds)
            tick(world, tally)
            if step in (0, 2):
                visit(world, tally)
        tally.record_errors += int(metrics.counter(TICK_RECORD_ERRORS))
        check_nothing_stuck(world, tally)
    finally:
        close_ports(ports)


def check_nothing_stuck(world: World, tally: Tally) -> None:
    """After the last tick (a year on), no readable run may still hold a live attempt whose
    lease expired: the monitor crashed (or retried) every one, however odd its other values."""
    store, now = world.api.ports.store.adapter, world.api.clock()
    policy = LeasePolicy(timedelta(seconds=HEARTBEAT_TIMEOUT))
    expired_before = policy.silent_since(now)
    for state_type in LIVE_STATE_TYPES:
        due = now if state_type is StateType.SCHEDULED else None
        cursor = None
        while True:
            page = store.list_flow_runs_by_state(state_type, scheduled_before=due, limit=200,
                                                 cursor=cursor)
            for run in page.items:
                if not holds_live_attempt(run) or last_sign_of_life(run) >= expired_before:
                    continue
                if lease_outlives(run, now - policy.margin):
                    tally.kept_by_lease_expiry += 1  # a stored expiry still ahead: trusted
                    continue
                tally.stuck += 1
                tally.fail(f"flow run {run.id} still holds an expired lease after the last "
                           f"tick: {short(world.runs.get(run.id))!r}")
            cursor = page.next_cursor
            if cursor is None:
                break


def fuzz_examples(default: int = 2) -> int:
    return int(os.environ.get("SLUICE_FUZZ_EXAMPLES") or default)


def test_no_stored_value_aborts_a_tick_or_makes_a_route_answer_5xx(seed, tmp_path):
    worlds = fuzz_examples()
    tally = Tally()
    unreadable_before = sum(records.unreadable_records.values())
    started = time.monotonic()
    logging.getLogger().addHandler(LAST_TRACEBACK)
    try:
        for index in range(worlds):
            fuzz_world(seed * 1_000 + index, tmp_path / f"world-{index}", tally)
    finally:
        logging.getLogger().removeHandler(LAST_TRACEBACK)
    elapsed = time.monotonic() - started
    skipped = sum(records.unreadable_records.values()) - unreadable_before
    Figures(
        scenario="7c stored values fuzzed", seed=seed, runs=tally.records, workers=0,
        crashes_injected=tally.extreme,
        lost=tally.server_errors + tally.ticks_aborted + tally.stuck,
        seconds=elapsed,
        notes={"worlds": worlds, "records stored": tally.records,
               "unreadable records stored": tally.extreme, "ticks run": tally.ticks,
               "ticks aborted": tally.ticks_aborted, "routes called": tally.routes,
               "5xx": tally.server_errors, "runs left holding an expired lease": tally.stuck,
               "runs kept by a stored lease_expires_at still ahead": tally.kept_by_lease_expiry,
               "records skipped by ticks (TickRecordErrors)": tally.record_errors,
               "unreadable records skipped by lists": skipped},
    ).save()
    assert not tally.failures, (
        f"{tally.ticks_aborted} ticks aborted, {tally.server_errors} 5xx answers, {tally.stuck} "
        "runs stuck "
        f"(seed {seed}); first ones:\n\n" + "\n\n".join(tally.failures[:10]))
    assert tally.ticks == worlds * len(CLOCK_STEPS) * 2 and tally.routes > 0
    assert math.isfinite(elapsed)



def test_the_fuzzed_records_cover_every_field_of_runs_deployments_and_schedules():
    # A field added to a model later is fuzzed too, or this fails.
    from sluice.models import Deployment, Schedule

    rng = random.Random(0)
    assert set(fuzzed_run(rng, ["d"], corrupted=False)) == set(FlowRun.model_fields)
    assert set(fuzzed_deployment(rng, 0, corrupted=False)) == set(Deployment.model_fields)
    assert set(fuzzed_schedule(rng)) == set(Schedule.model_fields)
