"""1,000 and 10,000 concurrent runs on one control plane: requests per second at the API,
DynamoDB units per second, latency per route family, false crashes and the monthly bill.

    python bench/scale.py [--quick | --full] [--targets aws embedded] [--cases 1000x50x20 ...]
                          [--minutes M] [--run-minutes M] [--events-every S] [--memory-mb MB]
                          [--no-write]

Simulated workers follow the protocol (claim, Running, heartbeats, events batches, final state,
a new run in the freed slot) against (a) the API Lambda handler with the AWS adapters on moto
and (b) the embedded server over HTTP, on a simulated clock: see bench/scale_sim.py for how
time is simulated and bench/scale_targets.py for what is measured on each. Heartbeats are sent
per run (`POST /pools/{pool}/flow-runs/{id}/heartbeat`, plus a worker presence beat every 30 s)
and, when the control plane has it, per worker (`POST /pools/{pool}/workers/{worker}/heartbeat`,
one request renewing all of a worker's leases): both are reported side by side.

`--quick` (what `make bench` runs; the default) simulates 2 minutes (past one lease + its
margin, so a renewal that missed would show as a crash): on the embedded server 1,000 runs; on
AWS a sample (`--sample`, 100 runs on 5 workers: 20 per worker as at 1,000), from which the
1,000- and 10,000-run cases are *extrapolated* (per-run route families by the runs' ratio,
per-worker ones by the workers', a per-worker heartbeat's and a monitor tick's units by what
they read) and labelled so. `--full` measures every case on both targets over 5 simulated
minutes: slow and memory-hungry on moto, which deep-copies the whole table in every
TransactWriteItems (to roll back), so each claim and state change costs time and memory in
proportion to the table (hours and several GB for 10,000 runs).

Prints the tables, merges the figures into bench/results.json and writes the section "At
scale" of docs/cost.md (kept there when bench/cost_model.py regenerates the file).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from _common import machine, percentile, record  # noqa: E402
from aws_requests import LAMBDA_MEMORY_MB  # noqa: E402
from cost_model import PRICES, PRICES_AS_OF, REGION, SECONDS_PER_MONTH, cost  # noqa: E402
from doc_sections import splice  # noqa: E402
from scale_report import markdown_section, print_outcome  # noqa: E402
from scale_sim import FAMILIES, TICKS, Outcome, Scenario, SimClock, simulate  # noqa: E402
from scale_targets import aws_target, embedded_target  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
COST_DOC = ROOT / "docs" / "cost.md"
SECTION = "bench/scale.py"
#: (runs, workers, slots per worker).
CASES = [(1000, 50, 20), (10_000, 200, 50)]
#: Families whose calls grow with the runs / with the workers (for extrapolation).
PER_RUN = ("events", "state", "claim", "create run", "heartbeat (run)")
PER_WORKER = ("presence", "heartbeat (worker)")
#: What keeps runs and workers alive (the "of which heartbeats" column).
HEARTBEATS = ("heartbeat (run)", "heartbeat (worker)", "presence")


def figures_of(outcome: Outcome, *, priced: bool, extrapolated_from: str | None = None
               ) -> dict[str, Any]:
    """Rates per second of simulated time, latency per route family and the monthly cost."""
    seconds = outcome.seconds
    families: dict[str, Any] = {}
    total: collections.Counter = collections.Counter()
    for name in (*FAMILIES, *TICKS):
        fam = outcome.families[name]
        if not fam.calls:
            continue
        total.update(fam.usage)
        families[name] = {
            "per_s": fam.calls / seconds, "calls": fam.calls,
            "p50_ms": percentile(fam.ms, 50), "p99_ms": percentile(fam.ms, 99),
            "wru_per_s": fam.usage.get("dynamodb_wru", 0) / seconds,
            "rru_per_s": fam.usage.get("dynamodb_rru", 0) / seconds,
        }
    api_per_s = sum(f["per_s"] for n, f in families.items() if n in FAMILIES)
    out = {
        "target": outcome.target, "runs": outcome.scenario.runs,
        "workers": outcome.scenario.workers, "limit": outcome.scenario.limit,
        "heartbeat": outcome.scenario.heartbeat, "simulated_seconds": seconds,
        "wall_seconds": round(outcome.wall_seconds, 1),
        "extrapolated_from": extrapolated_from,
        "runs_completed": outcome.runs_completed, "false_crashes": outcome.false_crashes,
        "false_crash_reasons": dict(outcome.false_crash_reasons),
        "api_requests_per_s": api_per_s, "families": families,
        "wru_per_s": total.get("dynamodb_wru", 0) / seconds,
        "rru_per_s": total.get("dynamodb_rru", 0) / seconds,
    }
    if priced:
        monthly = {k: v / seconds * SECONDS_PER_MONTH for k, v in total.items()
                   if isinstance(v, (int, float))}
        out["monthly_cost"] = cost(monthly)
        beats: collections.Counter = collections.Counter()
        for name in HEARTBEATS:
            beats.update(outcome.families[name].usage)
        out["heartbeats_monthly_cost"] = cost(
            {k: v / seconds * SECONDS_PER_MONTH for k, v in beats.items()})["total"]
    return out


def extrapolate(outcome: Outcome, runs: int, workers: int, limit: int) -> Outcome:
    """`outcome` (measured) scaled to `runs` on `workers`: per-run families by the runs' ratio,
    per-worker ones by the workers'; a per-worker heartbeat's and a monitor tick's units by
    how much more each call reads (leases per worker, live runs). Latencies as measured."""
    s = outcome.scenario
    by_runs, by_workers = runs / s.runs, workers / s.workers
    per_call = {"heartbeat (worker)": (runs / workers) / (s.runs / s.workers),
                "monitor tick": by_runs}
    scaled = Outcome(Scenario(runs, workers, limit, s.minutes, s.run_minutes, s.events_every,
                              s.task_runs_per_batch, s.logs_per_batch, s.presence_every,
                              s.tick_every, s.heartbeat, s.seed),
                     outcome.target, outcome.seconds, {})
    for name, fam in outcome.families.items():
        calls = by_runs if name in PER_RUN else by_workers if name in PER_WORKER else 1.0
        units = calls * per_call.get(name, 1.0)
        usage = collections.Counter({k: v * (units if k.startswith("dynamodb") else calls)
                                     for k, v in fam.usage.items()})
        scaled.families[name] = type(fam)(round(fam.calls * calls), fam.ms, usage)
    scaled.runs_completed = round(outcome.runs_completed * by_runs)
    scaled.false_crashes = outcome.false_crashes
    return scaled


def run_case(target_name: str, case: tuple[int, int, int], mode: str,
             args: argparse.Namespace) -> Outcome | None:
    """One simulation on a fresh control plane; None when the mode is not available there."""
    runs, workers, limit = case
    scenario = Scenario(runs, workers, limit, minutes=args.minutes, run_minutes=args.run_minutes,
                        events_every=args.events_every, heartbeat=mode)
    clock = SimClock()
    factory = (lambda: aws_target(clock, memory_mb=args.memory_mb)) if target_name == "aws" \
        else (lambda: embedded_target(clock))
    # stdout is kept for the tables: the EMF metrics adapter prints its documents on flush.
    with contextlib.redirect_stdout(io.StringIO()), factory() as target:
        if mode == "worker" and not target.has_worker_heartbeat():
            return None
        return simulate(target, scenario)


def rounded(value: Any) -> Any:
    """`value` with its floats to 4 significant digits (results.json stays readable)."""
    if isinstance(value, float):
        return float(f"{value:.4g}")
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v) for v in value]
    return value


def parse_case(text: str) -> tuple[int, int, int]:
    runs, workers, limit = (int(x) for x in text.lower().split("x"))
    return runs, workers, limit


def plan(target: str, cases: list[tuple[int, int, int]], args: argparse.Namespace
         ) -> list[tuple[tuple[int, int, int], bool]]:
    """(case, measured?) in order: `--full` measures every case; otherwise AWS measures the
    sample and extrapolates the cases from it, the embedded server measures the first case."""
    if args.full:
        return [(case, True) for case in cases]
    if target == "aws":
        return [(args.sample, True)] + [(case, False) for case in cases if case != args.sample]
    return [(cases[0], True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="the make bench size (default)")
    size.add_argument("--full", action="store_true", help="measure every case on both targets")
    parser.add_argument("--targets", nargs="+", choices=["aws", "embedded"],
                        default=["aws", "embedded"])
    parser.add_argument("--cases", nargs="+", metavar="RUNSxWORKERSxLIMIT",
                        help="e.g. 1000x50x20 10000x200x50 (default: both)")
    parser.add_argument("--sample", default="100x5x20", metavar="RUNSxWORKERSxLIMIT",
                        help="without --full: the case measured on AWS, the others scaled "
                        "from it (default 100x5x20: 20 runs per worker, as at 1,000)")
    parser.add_argument("--minutes", type=float, help="simulated minutes (2 quick, 5 full)")
    parser.add_argument("--run-minutes", type=float, default=10.0, help="length of each run")
    parser.add_argument("--events-every", type=float, default=60.0,
                        help="seconds between a run's events batches (2 task runs + 2 log lines)")
    parser.add_argument("--memory-mb", type=int, default=LAMBDA_MEMORY_MB,
                        help="the API function's memory (Lambda bills GB-s)")
    parser.add_argument("--out", type=Path, default=COST_DOC,
                        help="the document whose 'At scale' section is (re)written")
    parser.add_argument("--no-write", action="store_true",
                        help="print only: leave docs/cost.md and bench/results.json alone")
    args = parser.parse_args()
    os.environ.setdefault("SLUICE_LOGGING_LEVEL", "WARNING")
    args.minutes = args.minutes or (5.0 if args.full else 2.0)
    cases = [parse_case(c) for c in args.cases] if args.cases else CASES
    args.sample = parse_case(args.sample)
    print(f"scale on {machine()}; {args.minutes:g} simulated minutes per case, runs of "
          f"{args.run_minutes:g} min, an events batch per run every {args.events_every:g} s")
    results: list[dict[str, Any]] = []
    for target_name in args.targets:
        measured: dict[str, Outcome] = {}
        for case, measure in plan(target_name, cases, args):
            for mode in ("run", "worker"):
                if not measure:
                    if mode not in measured:
                        continue
                    base = measured[mode].scenario
                    fig = figures_of(extrapolate(measured[mode], *case), priced=True,
                                     extrapolated_from=f"{base.runs:,} runs on {base.workers}")
                else:
                    outcome = run_case(target_name, case, mode, args)
                    if outcome is None:
                        print(f"\n{target_name}: no per-worker heartbeat route on this control "
                              "plane (issue 18.1 not landed): per-run mode only")
                        continue
                    measured.setdefault(mode, outcome)
                    fig = figures_of(outcome, priced=target_name == "aws")
                print_outcome(fig)
                results.append(fig)
    if not args.no_write:
        record("scale", {"minutes": args.minutes, "full": bool(args.full),
                         "results": rounded(results), "region": REGION,
                         "prices_as_of": PRICES_AS_OF})
        text = args.out.read_text()
        section = markdown_section(results, minutes=args.minutes, args=args, prices=PRICES)
        args.out.write_text(splice(text, SECTION, section,
                                   before="## Free tiers (not counted above)"))
        print(f"\nsection 'At scale' written to {args.out}")
    crashes = sum(r["false_crashes"] for r in results)
    print(f"\nfalse crashes: {crashes}" + ("" if not crashes else "  <-- MUST BE 0"))
    if crashes:
        print(json.dumps([r["false_crash_reasons"] for r in results if r["false_crashes"]]))
        sys.exit(1)


if __name__ == "__main__":
    main()
