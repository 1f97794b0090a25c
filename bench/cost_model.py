"""What Sluice costs on AWS: docs/requests.json (counted by bench/aws_requests.py) x list prices
-> docs/cost.md.

    python bench/cost_model.py [--requests docs/requests.json] [--out docs/cost.md]

No AWS call and no measurement here: the counts come from the committed docs/requests.json,
so the model can be regenerated (e.g. with new prices) without rerunning AWS mode. Prices are
the inputs below; change them and rerun.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from _common import record  # noqa: E402
from doc_sections import extract, splice  # noqa: E402
from sluice_functions.orchestration.leases import LeasePolicy  # noqa: E402
from sluice_worker.supervisor import RunSettings  # noqa: E402
from sluice_functions.service.pools import WORKER_IDLE_BEAT  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
REGION = "us-east-1"
#: When the prices below were published (AWS public list prices; see SOURCES).
PRICES_AS_OF = "2025"
GB = 10**9  # bytes per GB, rounded in the bill's disfavour (AWS's GB is 2^30)
HOURS_PER_MONTH = 730  # AWS's billing month
SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600
TICKS_PER_MONTH = HOURS_PER_MONTH * 60  # EventBridge rate(1 minute), per tick function

#: us-east-1 list prices, free tiers not counted.
PRICES = {
    "api_request": 1.00 / 1e6,  # API Gateway HTTP API, first 300 M requests/month, per 512 KB
    "lambda_request": 0.20 / 1e6,
    "lambda_gb_s": 0.0000133334,  # Arm (Graviton), first 7.5 B GB-s/month
    "dynamodb_wru": 0.625 / 1e6,  # on-demand, since the 1 Nov 2024 reduction
    "dynamodb_rru": 0.125 / 1e6,
    "dynamodb_storage_gb_month": 0.25,  # Standard table class, beyond 25 GB free
    "sqs_request": 0.40 / 1e6,  # standard queue, per 64 KB chunk, beyond 1 M free
    "logs_ingest_gb": 0.50,  # CloudWatch Logs Standard class (EMF documents included)
    "logs_storage_gb_month": 0.03,  # archived (CloudWatch compresses it; counted raw here)
    "custom_metric_month": 0.30,  # first 10,000 metrics, prorated by the hour
    "alarm_month": 0.10,  # standard-resolution alarm
    "dashboard_month": 3.00,
    "eventbridge_scheduled_event": 0.0,  # scheduled rules deliver AWS events: no charge
}
COMPARISON_PRICES = {
    "step_functions_transition": 0.025 / 1000,  # Standard workflows, beyond 4,000 free
    "mwaa_small_hour": 0.49,  # mw1.small environment (scheduler, 1 worker, web server)
    "ec2_t3_small_hour": 0.0208,  # Linux on-demand
    "rds_t3_micro_hour": 0.018,  # PostgreSQL single-AZ on-demand
    "rds_storage_gb_month": 0.115,  # gp2
    "ebs_gp3_gb_month": 0.08,
    "alb_hour": 0.0225,  # plus LCUs; only if the server is put behind a load balancer
}
SOURCES = [
    ("API Gateway", "https://aws.amazon.com/api-gateway/pricing/"),
    ("Lambda", "https://aws.amazon.com/lambda/pricing/"),
    ("DynamoDB on-demand", "https://aws.amazon.com/dynamodb/pricing/on-demand/"),
    ("SQS", "https://aws.amazon.com/sqs/pricing/"),
    ("CloudWatch (logs, metrics, alarms, dashboards)",
     "https://aws.amazon.com/cloudwatch/pricing/"),
    ("EventBridge", "https://aws.amazon.com/eventbridge/pricing/"),
    ("Step Functions", "https://aws.amazon.com/step-functions/pricing/"),
    ("MWAA", "https://aws.amazon.com/managed-workflows-for-apache-airflow/pricing/"),
    ("EC2 on-demand", "https://aws.amazon.com/ec2/pricing/on-demand/"),
    ("RDS for PostgreSQL", "https://aws.amazon.com/rds/postgresql/pricing/"),
]
#: The stack's CloudWatch alarms, essential set (`sluice:alarms=essential`, the default: 7): in
#: infra/sluice_infra/operations.py, the scheduler's and monitor's not-invoked (2), the one
#: dead-letter alarm over every pool (1) and API 429s (1); in observability.py, crashed runs
#: and API 5xx (2); in automation_function.py, the automation function's own dead letters (1).
#: None per pool.
ALARMS_FIXED = 7
ALARMS_PER_POOL = 0
#: The full set (`sluice:alarms=full`: 17 + 1 per pool) adds throttles of
#: each of the four functions (api, scheduler, monitor, automations: 4), table throttles (1),
#: records a tick skipped (1), errors of each function (4), and per pool the stack creates (the
#: default pool included) the age of its queue's oldest message (pools created later through
#: the API get none).
ALARMS_FULL_FIXED = 17
ALARMS_FULL_PER_POOL = 1
#: The dashboard is off by default (`sluice:dashboard=true` adds it: $3 a month beyond the
#: account's first three).
DASHBOARDS = 0
#: Run lengths (seconds) the per-run figures are shown for.
RUN_LENGTHS = (0, 60, 600)
#: A busy worker beats once per interval: the lease's renewal interval (a third of the 90 s
#: lease), capped by the worker's --heartbeat-interval (10 s by default), so 10 s. Each run's
#: queue message is extended as often.
HEARTBEAT_INTERVAL = int(min(RunSettings().heartbeat_interval,
                             LeasePolicy().heartbeat_interval_seconds))
#: An idle worker beats (its presence only: the worker's last_seen, no session write) as often
#: as the control plane's answers say (`WORKER_IDLE_BEAT`, service/pools.py), so 180 s.
IDLE_BEAT_INTERVAL = int(WORKER_IDLE_BEAT.total_seconds())
#: Runs one worker holds at once in the model (the worker's default --limit): a run pays a
#: quarter of each beat of its worker.
RUNS_PER_WORKER = 4
#: The monitor copies a session's renewal onto a long run's `heartbeat_at` once the run's own
#: is older than lease + margin, on its next tick: about once per 90 s + 9 s + a 60 s tick at
#: most; modelled as one run write per 120 s.
MONITOR_NOTE_INTERVAL = 120
LONG_POLL_SECONDS = 20
#: The reporter's batch limit (records per events call).
BATCH_RECORDS = 500
#: The section of docs/cost.md that bench/scale.py writes (doc_sections markers).
SCALE_SECTION = "bench/scale.py"
#: The per-run cost of each pool kind, which bench/pool_costs.py writes (doc_sections markers).
POOL_KINDS_SECTION = "bench/pool_costs.py"

Usage = dict[str, float]

LINES = [  # (cost line, function of a usage)
    ("API Gateway", lambda u: u.get("api_requests", 0) * PRICES["api_request"]),
    ("Lambda", lambda u: u.get("lambda_invocations", 0) * PRICES["lambda_request"]
     + u.get("lambda_gb_s", 0) * PRICES["lambda_gb_s"]),
    ("DynamoDB", lambda u: u.get("dynamodb_wru", 0) * PRICES["dynamodb_wru"]
     + u.get("dynamodb_rru", 0) * PRICES["dynamodb_rru"]
     + u.get("dynamodb_stored_bytes", 0) / GB * PRICES["dynamodb_storage_gb_month"]),
    ("SQS", lambda u: u.get("sqs_requests", 0) * PRICES["sqs_request"]),
    ("CloudWatch Logs", lambda u: log_bytes(u) / GB
     * (PRICES["logs_ingest_gb"] + PRICES["logs_storage_gb_month"])),
]


def log_bytes(u: Usage) -> float:
    return sum(v for k, v in u.items() if k.startswith("logs_bytes_"))


def add(*parts: tuple[float, Usage]) -> Usage:
    out: Usage = {}
    for factor, usage in parts:
        for key, value in usage.items():
            out[key] = out.get(key, 0) + factor * value
    return out


def cost(u: Usage) -> dict[str, float]:
    lines = {name: fn(u) for name, fn in LINES}
    lines["total"] = sum(lines.values())
    return lines


def money(value: float) -> str:
    if value == 0:
        return "$0"
    if value >= 100:
        return f"${value:,.0f}"
    if value >= 1:
        return f"${value:,.2f}"
    digits = max(2, 1 - math.floor(math.log10(abs(value))) + 1)
    return f"${value:.{digits}f}"


def count(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.3g}"


def _without_state(final: dict[str, Any]) -> dict[str, Any]:
    usage = dict(final["usage_per_call"])
    usage["dynamodb_wru"] = usage.get("dynamodb_wru_task_runs", 0)
    usage["dynamodb_rru"] = 1
    for op in ("dynamodb.UpdateItem", "dynamodb.PutItem", "dynamodb.GetItem"):
        usage.pop(op, None)
    usage["dynamodb.GetItem"] = 1
    return {**final, "usage_per_call": usage, "calls_per_run": 0}


class Model:
    """The usage of each scenario, from the counted requests."""

    def __init__(self, counts: dict[str, Any]) -> None:
        self.c = counts
        self.tasks = counts["tasks_per_run"]
        calls = counts["calls_per_flow_run"]
        # A short run sends everything with its final state (issue 20): then an events call
        # is priced from that one without its state change (its records' write units and one
        # read of the run) and counted 0 times per short run.
        self.events = calls.get("api: events batch") or _without_state(
            calls["api: events batch + final state"])
        records = self.events["records_per_call"]
        per_call = self.events["usage_per_call"]
        # Priced from the batches that carried task runs (a short run's may all ride with the
        # final state, whose WRU the meter splits out as dynamodb_wru_task_runs).
        priced = next((c for c in (self.events, calls.get("api: events batch + final state"))
                       if c and c["records_per_call"].get("task_runs")), self.events)
        priced_usage = priced["usage_per_call"]
        task_wru = priced_usage.get("dynamodb_wru_task_runs", priced_usage.get("dynamodb_wru", 0))
        #: One task-run record (a conditional PutItem) and one log line (bytes ingested).
        self.task_record = {"dynamodb.PutItem": 1, "dynamodb_wru":
                            task_wru / max(1, priced["records_per_call"].get("task_runs", 0))}
        self.log_line = {"logs_bytes_run_logs":
                         per_call.get("logs_bytes_run_logs", 0) / max(1, records["logs"])}
        #: An events call without its records: request, invocation, run read, its own logs.
        self.events_call = add((1, per_call), (-records["task_runs"], self.task_record),
                               (-records["logs"], self.log_line))
        self.records_per_run = records["task_runs"] * self.events["calls_per_run"]
        self.logs_per_run = records["logs"] * self.events["calls_per_run"]
        stored = counts["stored_per_run"]
        # Items live for the 30-day retention: about one month of storage each.
        self.run_rest = add((1, counts["per_flow_run"]),
                            (-self.events["calls_per_run"], per_call),
                            (1, {"dynamodb_stored_bytes": stored["table_bytes"]
                                 + stored["index_bytes"]}))
        # The last batch carries the run's final state (issue 20): its records count as
        # records, the rest of it (the state change) stays with the run, once per run.
        final = calls.get("api: events batch + final state")
        if final:
            final_records = {k: v * final["calls_per_run"]
                             for k, v in final.get("records_per_call", {}).items()}
            self.records_per_run += final_records.get("task_runs", 0)
            self.logs_per_run += final_records.get("logs", 0)
            self.run_rest = add((1, self.run_rest),
                                (-final_records.get("task_runs", 0), self.task_record),
                                (-final_records.get("logs", 0), self.log_line))

    def worker_beat(self, runs: float) -> Usage:
        """One per-worker beat holding `runs` runs: linear between the beats measured holding
        1 and 20 runs (the batch read and the session item grow with the runs held)."""
        beats = self.c["per_worker_beat"]
        one, twenty = beats["runs_1"], beats["runs_20"]
        return add((1, one), ((runs - 1) / 19, twenty), (-(runs - 1) / 19, one))

    def run_heartbeats(self, seconds: float) -> Usage:
        """What keeps a run alive for `seconds`: its share of its worker's beats (one per
        interval holding RUNS_PER_WORKER runs), its queue message's visibility extensions, and
        the monitor's note of the renewal on the run."""
        intervals = seconds // HEARTBEAT_INTERVAL
        return add((intervals / RUNS_PER_WORKER, self.worker_beat(RUNS_PER_WORKER)),
                   (intervals, self.c["per_visibility_extension"]),
                   (seconds // MONITOR_NOTE_INTERVAL, self.c["monitor_note_write"]))

    def run(self, seconds: float) -> Usage:
        """One flow run of `tasks` tasks lasting `seconds`: measured for a short run; a long
        run is kept alive (`run_heartbeats`) and, its tasks being spread out, reports each
        task's Running and Completed in separate batches (2 records and about 2 calls per
        task)."""
        short = seconds < self.tasks  # tasks shorter than a second share batches
        calls = self.events["calls_per_run"] if short else 2 * self.tasks
        task_records = self.records_per_run if short else 2 * self.tasks
        return add((1, self.run_rest), (calls, self.events_call),
                   (task_records, self.task_record), (self.logs_per_run, self.log_line),
                   (1, self.run_heartbeats(seconds)))

    def task_marginal(self) -> Usage:
        """One more task run in a large flow: a record of its final state and a log line, and
        its share of a full events call (500 records)."""
        return add((1, self.task_record), (1, self.log_line),
                   (2 / BATCH_RECORDS, self.events_call))

    def ticks(self, key: str = "ticks_idle") -> Usage:
        ticks = self.c[key]
        return add((TICKS_PER_MONTH, ticks["scheduler"]), (TICKS_PER_MONTH, ticks["monitor"]))

    def worker_month(self, busy_share: float = 0.0) -> tuple[Usage, Usage]:
        """(idle beats, empty long polls) of one worker for a month: its presence is its
        per-worker beat holding no run (busy beats are counted with the runs)."""
        presence = add(((1 - busy_share) * SECONDS_PER_MONTH / IDLE_BEAT_INTERVAL,
                        self.c["per_worker_beat"]["runs_0"]))
        polls = add(((1 - busy_share) * SECONDS_PER_MONTH / LONG_POLL_SECONDS,
                     self.c["per_empty_receive"]))
        return presence, polls

    def metrics_active(self) -> int:
        return len(self.c["emf_metrics_seen"])


def fixed_monthly(pools: int = 1) -> dict[str, float]:
    alarms = ALARMS_FIXED + ALARMS_PER_POOL * pools
    return {f"CloudWatch alarms, essential set ({alarms})": alarms * PRICES["alarm_month"],
            "CloudWatch dashboard (off by default)": DASHBOARDS * PRICES["dashboard_month"]}


def optional_monthly(pools: int = 1) -> dict[str, float]:
    """What the optional parts add to the idle stack (beyond the defaults of `fixed_monthly`)."""
    full = ALARMS_FULL_FIXED + ALARMS_FULL_PER_POOL * pools
    essential = ALARMS_FIXED + ALARMS_PER_POOL * pools
    return {f"sluice:alarms=full ({full} alarms)": (full - essential) * PRICES["alarm_month"],
            "sluice:dashboard=true": (1 - DASHBOARDS) * PRICES["dashboard_month"]}


def table(header: list[str], rows: list[list[str]], align: str = "") -> str:
    """A Markdown table; `align` has one letter per column (l/r), default: first left."""
    align = align or "l" + "r" * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def render(counts: dict[str, Any]) -> tuple[str, dict[str, float]]:
    m = Model(counts)
    tasks = m.tasks
    # ---- idle
    ticks = m.ticks()
    ticks_cost = cost(ticks)
    fixed = fixed_monthly()
    optional = optional_monthly()
    optional_full, optional_dashboard = optional.values()
    idle_total = ticks_cost["total"] + sum(fixed.values())
    scheduled_delta = cost(add((1, m.ticks("ticks_with_one_hourly_deployment")),
                               (-1, ticks)))["total"]
    # ---- runs
    per_run = {seconds: m.run(seconds) for seconds in RUN_LENGTHS}
    per_1000 = {seconds: cost(add((1000, u))) for seconds, u in per_run.items()}
    reads_1000 = cost(add((1000, counts["user_reads_per_run"]["usage"])))["total"]
    heartbeat_share_10min = cost(add((1000, m.run_heartbeats(600))))["total"] \
        / per_1000[600]["total"]
    # ---- tasks
    per_million_marginal = cost(add((1e6, m.task_marginal())))
    per_million_in_runs = per_1000[0]["total"] * 1000 / tasks
    # ---- worker
    presence, polls = m.worker_month()
    presence_cost, polls_cost = cost(presence), cost(polls)
    worker_total = presence_cost["total"] + polls_cost["total"]
    metrics_month = m.metrics_active() * PRICES["custom_metric_month"]
    # ---- comparisons
    transitions = 2 * tasks + 2
    sfn_1000 = 1000 * transitions * COMPARISON_PRICES["step_functions_transition"]
    sfn_million_tasks = 1e6 * 2 * COMPARISON_PRICES["step_functions_transition"]
    mwaa = HOURS_PER_MONTH * COMPARISON_PRICES["mwaa_small_hour"]
    hours, prices = HOURS_PER_MONTH, COMPARISON_PRICES
    prefect_parts = {
        "EC2 t3.small (Prefect server + UI)": hours * prices["ec2_t3_small_hour"],
        "its 20 GB gp3 volume": 20 * COMPARISON_PRICES["ebs_gp3_gb_month"],
        "RDS db.t3.micro PostgreSQL, single-AZ": hours * prices["rds_t3_micro_hour"],
        "its 20 GB gp2 storage": 20 * COMPARISON_PRICES["rds_storage_gb_month"],
    }
    prefect = sum(prefect_parts.values())
    alb = HOURS_PER_MONTH * COMPARISON_PRICES["alb_hour"]
    sluice_run_cost = per_1000[60]["total"] / 1000
    break_even = (prefect - idle_total - metrics_month - worker_total) / sluice_run_cost

    def runs_per_month(n: int, seconds: int = 60) -> float:
        return idle_total + metrics_month + worker_total + n * per_1000[seconds]["total"] / 1000

    pr = counts["per_flow_run"]
    beat = m.worker_beat(RUNS_PER_WORKER)
    idle_beat = counts["per_worker_beat"]["runs_0"]
    note = counts["monitor_note_write"]
    machine = counts["machine"]
    out = [
        "# What Sluice costs on AWS",
        "",
        f"Generated by `bench/cost_model.py` from [`requests.json`](requests.json) (counted by "
        f"`bench/aws_requests.py` on {counts['generated_at']}, commit {machine['commit']}). "
        f"Region **{REGION}**, AWS **list prices as published in {PRICES_AS_OF}** on the AWS "
        "pricing pages listed at the end (DynamoDB on-demand after its November 2024 reduction). "
        "**Free tiers are not counted** (see the end). Lambda: arm64, "
        f"**{counts['lambda_memory_mb']} MB** (the stack's setting), billed on the handler "
        "times measured in-process against moto; real AWS calls take longer (a few ms per "
        "DynamoDB request), which matters little: Lambda is a small part of every figure.",
        "",
        "## Summary",
        "",
        table(["scenario", "cost"], [
            ["idle control plane, per month (ticks, essential alarms)", money(idle_total)],
            *[[f"… with {name}", "+" + money(value)] for name, value in optional.items()],
            [f"1,000 flow runs of {tasks} tasks, short (< {tasks} s)", money(per_1000[0]["total"])],
            [f"1,000 flow runs of {tasks} tasks, 1 minute each", money(per_1000[60]["total"])],
            [f"1,000 flow runs of {tasks} tasks, 10 minutes each", money(per_1000[600]["total"])],
            ["1 million task runs, in large flows (marginal)",
             money(per_million_marginal["total"])],
            [f"1 million task runs, in short {tasks}-task flows (whole runs)",
             money(per_million_in_runs)],
            ["one worker polling 24/7, per month", money(worker_total)],
            [f"custom metrics while runs happen every hour ({m.metrics_active()} with one pool)",
             money(metrics_month) + " per month"],
        ]),
        "",
        "## What is counted per flow run",
        "",
        f"A deployed flow of {tasks} tasks (each logs one line), run by a real worker; every "
        "request is counted at the AWS SDK (botocore) level, DynamoDB request units are "
        "estimated from item sizes (1 WRU per started KB written, x2 in transactions, plus "
        "each global secondary index entry written; 1 RRU per started 4 KB read strongly, "
        "half for index queries), SQS requests per started 64 KB, CloudWatch Logs bytes as "
        "message + 26 bytes per event: run logs, the functions' own log lines and EMF "
        "documents (Lambda's own start and report lines are off by default: "
        "`sluice:lambdaSystemLogs`), and one API access-log line per request.",
        "",
        table(["per flow run (short)", "count"], [
            ["API Gateway requests = Lambda invocations", count(pr.get("api_requests", 0))],
            ["Lambda GB-s (handler ms in-process)",
             f"{pr.get('lambda_gb_s', 0):.3f} ({pr.get('lambda_ms', 0):.0f} ms)"],
            ["DynamoDB WRU / RRU", f"{count(pr.get('dynamodb_wru', 0))} / "
                                   f"{count(pr.get('dynamodb_rru', 0))}"],
            ["SQS requests (send, receive, delete)", count(pr.get("sqs_requests", 0))],
            ["CloudWatch Logs bytes ingested", count(log_bytes(pr))],
            ["task-run records / log lines", f"{count(m.records_per_run)} / "
                                             f"{count(m.logs_per_run)}"],
            ["DynamoDB bytes stored (items + index entries, 30 days)",
             count(counts["stored_per_run"]["table_bytes"]
                   + counts["stored_per_run"]["index_bytes"])],
        ]),
        "",
        table(["call", "per run", "handler ms", "DynamoDB WRU / RRU", "AWS requests per call"],
              [[label, f"{c['calls_per_run']:g}",
                f"{c['handler_ms_p50']:.1f}" if "handler_ms_p50" in c else "–",
                f"{c['usage_per_call'].get('dynamodb_wru', 0):g} / "
                f"{c['usage_per_call'].get('dynamodb_rru', 0):g}",
                ", ".join(f"{k} {v:g}" for k, v in c["usage_per_call"].items()
                          if "." in k and k.split(".")[0] in ("dynamodb", "sqs", "logs"))]
               for label, c in counts["calls_per_flow_run"].items()], align="lrrrl"),
        "",
        f"A worker renews all its runs with one heartbeat every {HEARTBEAT_INTERVAL} s "
        f"(an API call; holding {RUNS_PER_WORKER} runs, the model's default: "
        f"{beat.get('dynamodb_wru', 0):.3g} WRU, {beat.get('dynamodb_rru', 0):.3g} RRU), "
        f"and each run pays its share: 1/{RUNS_PER_WORKER} of each beat, plus its own SQS "
        f"ChangeMessageVisibility every {HEARTBEAT_INTERVAL} s and, about every "
        f"{MONITOR_NOTE_INTERVAL} s, the monitor's copy of the renewal onto the run "
        f"({note.get('dynamodb_wru', 0):g} WRU, inside a monitor tick already counted). An "
        f"idle worker beats every {IDLE_BEAT_INTERVAL} s "
        f"({idle_beat.get('dynamodb_wru', 0):g} WRU, {idle_beat.get('dynamodb_rru', 0):g} RRU) "
        f"and long-polls SQS every {LONG_POLL_SECONDS} s.",
        "",
        f"## Per 1,000 flow runs of {tasks} tasks",
        "",
        "A short run is what was measured. A longer run adds its share of its worker's "
        f"heartbeats (every {HEARTBEAT_INTERVAL} s, {RUNS_PER_WORKER} runs per worker) and, its "
        "tasks being spread out, sends each task's Running and Completed in separate batches "
        f"(about {2 * tasks} events calls instead of {m.events['calls_per_run']:g}).",
        "",
        table(["service"] + ["short run" if s == 0 else f"{s // 60} min run" for s in RUN_LENGTHS],
              [[name] + [money(per_1000[s][name]) for s in RUN_LENGTHS]
               for name in [n for n, _ in LINES] + ["total"]]),
        "",
        f"Reading a run afterwards (`flow-run inspect` and `logs`: "
        f"{len(counts['user_reads_per_run']['calls'])} API calls) adds {money(reads_1000)} "
        "per 1,000 runs. At 10 minutes, keeping the run alive (its share of the worker's "
        f"beats, its message's visibility, the monitor's notes) is "
        f"{100 * heartbeat_share_10min:.0f}% of the run's cost.",
        "",
        "## Per million task runs",
        "",
        table(["service", "marginal, in large flows", f"in short {tasks}-task flows"],
              [[name, money(per_million_marginal[name]),
                money(per_1000[0][name] * 1000 / tasks)]
               for name in [n for n, _ in LINES] + ["total"]]),
        "",
        "*Marginal*: one task-run record and one log line per task, in full "
        f"{BATCH_RECORDS}-record batches. A task reported once, finished, is packed with "
        f"others (about {m.task_record['dynamodb_wru']:.2g} WRU a record, as measured); a task "
        "reported twice (a long task: Running, then Completed) is a conditional PutItem of 1 "
        "WRU per record instead. *In short flows*: whole runs divided by their tasks.",
        "",
        "## Idle, per month",
        "",
        "Nothing runs unless a request or a tick exists: the scheduler and monitor functions "
        f"run once a minute each ({TICKS_PER_MONTH:,} invocations per function per month), "
        "reading the few index partitions that hold live runs.",
        "",
        table(["item", "per month"], [
            ["scheduler + monitor ticks: Lambda", money(ticks_cost["Lambda"])],
            ["scheduler + monitor ticks: DynamoDB reads", money(ticks_cost["DynamoDB"])],
            ["scheduler + monitor ticks: their logs", money(ticks_cost["CloudWatch Logs"])],
            ["scheduler + monitor ticks: SQS requests", money(ticks_cost["SQS"])],
            ["EventBridge scheduled rules", money(0)],
            *[[name, money(value)] for name, value in fixed.items()],
            ["custom metrics (none are emitted at idle)", money(0)],
            ["**total**", f"**{money(idle_total)}**"],
        ]),
        "",
        f"Each deployment on a schedule adds {money(scheduled_delta)} per month to the ticks "
        "(the scheduler reads its upcoming runs every minute). The essential alarms (the "
        "default) are the ticks' dead-man alarms, API 5xx, API 429s, crashed runs, dead letters "
        "of every pool and of the automations; each is one metric (CloudWatch bills an alarm per metric "
        "it reads, so combining them in a metric-math expression would save nothing). "
        f"`sluice:alarms=full` adds {money(optional_full)} (Lambda and DynamoDB throttles, each "
        "function's errors, records a tick skipped, and an oldest-message alarm per pool the "
        f"stack creates, at {money(PRICES['alarm_month'])} each); `sluice:dashboard=true` adds "
        f"{money(optional_dashboard)} (free for an account's first three dashboards).",
        "",
        "## A worker polling 24/7",
        "",
        table(["item", "calls per month", "per month"], [
            [f"idle heartbeats (every {IDLE_BEAT_INTERVAL} s, through the API)",
             count(SECONDS_PER_MONTH / IDLE_BEAT_INTERVAL), money(presence_cost["total"])],
            [f"empty long polls ({LONG_POLL_SECONDS} s, SQS)",
             count(SECONDS_PER_MONTH / LONG_POLL_SECONDS), money(polls_cost["total"])],
            ["**total**", "", f"**{money(worker_total)}**"],
        ]),
        "",
        f"Idle heartbeats are {100 * presence_cost['total'] / worker_total:.0f}% of it: "
        "each is an API request, a Lambda invocation, DynamoDB reads and one write (the worker's "
        f"last_seen: a beat holding no run writes no session, {idle_beat.get('dynamodb_wru', 0):g}"
        f" WRU, {idle_beat.get('dynamodb_rru', 0):g} RRU) and log lines, where an empty long "
        "poll is a single SQS request. Long polls are kept at 20 s, the longest wait SQS "
        "allows: polling less would delay pickup. "
        "A worker busy with runs polls less; its beats while it holds runs are counted with the "
        "runs.",
        "",
        "## Compared with",
        "",
        table(["option", "idle per month", f"1,000 runs of {tasks} tasks",
               "per million task runs", "notes"], [
            ["Sluice", money(idle_total), money(per_1000[60]["total"]) + " (1 min runs)",
             money(per_million_marginal["total"]),
             f"+ {money(worker_total)}/month per polling worker; workers are your EC2/on-prem"],
            ["Step Functions Standard", "$0", money(sfn_1000), money(sfn_million_tasks),
             f"{transitions} transitions per run (2 per task + start/end); task compute "
             "(Lambda, ECS) extra"],
            ["MWAA mw1.small", money(mwaa), "included", "included",
             "environment-hours only; extra workers and metadata storage extra"],
            ["self-hosted Prefect server + Postgres", money(prefect), "included", "included",
             "t3.small + db.t3.micro single-AZ, 20 GB each; no HA; "
             f"an ALB adds {money(alb)}+"],
        ], align="lrrrl"),
        "",
        "Self-hosted Prefect, itemised: " + "; ".join(
            f"{name} {money(value)}" for name, value in prefect_parts.items()) + ".",
        "",
        f"With one worker, Sluice stays below the self-hosted Prefect server up to about "
        f"**{round(break_even, -4):,.0f} one-minute runs of {tasks} tasks per month** "
        f"(1,000 runs: {money(runs_per_month(1000))}; 10,000: "
        f"{money(runs_per_month(10_000))}; 100,000: {money(runs_per_month(100_000))}, "
        "including idle, one worker and the custom metrics).",
        "",
        "## Free tiers (not counted above)",
        "",
        "The always-free tier covers 1 M Lambda requests and 400,000 GB-s, 1 M SQS requests, "
        "25 GB of DynamoDB storage, and in CloudWatch 10 custom metrics, 10 alarms, 3 "
        "dashboards and 5 GB of log data per month; API Gateway's 1 M HTTP API calls per month "
        "are free for the first 12 months. Within them the idle stack, one worker and a few "
        "thousand runs a month cost nothing.",
        "",
        "## Sources and assumptions",
        "",
        *[f"* {name}: <{url}>" for name, url in SOURCES],
        "* EC2 t3.small $0.0208/h, RDS db.t3.micro PostgreSQL $0.018/h, MWAA mw1.small "
        "$0.49/h: on-demand list prices, us-east-1.",
        f"* Prices are inputs at the top of `bench/cost_model.py` (list prices published in "
        f"{PRICES_AS_OF}); they were not re-read from the pages when this file was generated: "
        "check them before quoting.",
        "* GB = 10^9 bytes; a month = 730 hours. Logs are counted as ingested and kept one "
        "month (uncompressed: an upper bound on storage). Reads of logs (GetLogEvents) carry "
        "no request charge here.",
        "* Custom metrics are billed per metric per hour in which it is emitted: "
        f"{m.metrics_active()} metrics were seen with one pool "
        f"({', '.join(counts['emf_metrics_seen'])}); more pools and states add more.",
        "* Requests are counted on moto, which implements the APIs but not their latency: "
        "counts and item sizes carry over, handler times are indicative.",
    ]
    figures = {
        "idle_per_month": round(idle_total, 2),
        "per_1000_runs_short": round(per_1000[0]["total"], 4),
        "per_1000_runs_1min": round(per_1000[60]["total"], 4),
        "per_1000_runs_10min": round(per_1000[600]["total"], 4),
        "per_million_task_runs_marginal": round(per_million_marginal["total"], 3),
        "per_million_task_runs_short_flows": round(per_million_in_runs, 3),
        "worker_24_7_per_month": round(worker_total, 3),
        "presence_share_of_worker": round(presence_cost["total"] / worker_total, 3),
        "heartbeat_share_10min": round(heartbeat_share_10min, 3),
        "runs_per_worker_modelled": RUNS_PER_WORKER,
        "custom_metrics_per_month": round(metrics_month, 2),
        "step_functions_per_1000_runs": round(sfn_1000, 3),
        "mwaa_small_per_month": round(mwaa, 2),
        "prefect_self_hosted_per_month": round(prefect, 2),
        "break_even_runs_vs_prefect": round(break_even),
    }
    return "\n".join(out) + "\n", figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=Path, default=ROOT / "docs" / "requests.json")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "cost.md")
    args = parser.parse_args()
    counts = json.loads(args.requests.read_text())
    text, figures = render(counts)
    # The "At scale" section is bench/scale.py's (it measures, this model does not), "Per run,
    # by pool kind" bench/pool_costs.py's: both kept.
    for owned in (SCALE_SECTION, POOL_KINDS_SECTION):
        kept = extract(args.out.read_text(), owned) if args.out.exists() else None
        if kept:
            text = splice(text, owned, kept, before="## Free tiers (not counted above)")
    args.out.write_text(text)
    print(f"cost model ({REGION}, {PRICES_AS_OF} list prices, no free tier) -> {args.out}")
    for key, value in figures.items():
        print(f"{key:<36} {value}")
    record("cost_model", {"region": REGION, "prices_as_of": PRICES_AS_OF, **figures})


if __name__ == "__main__":
    main()
