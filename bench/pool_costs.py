"""What the compute of one flow run costs, by pool kind: Lambda pool (GB-s), Fargate pool (vCPU-s
and GB-s, one-minute minimum) and an EC2 worker (its hourly price amortised over its runs).

    python bench/pool_costs.py            # print the table
    python bench/pool_costs.py --write    # also write it into docs/cost.md and docs/pools.md

No AWS call: list prices (us-east-1, arm64) times the construct's default sizes. Only the
compute differs between kinds; the control plane's share of a run (API requests, table writes,
run logs: docs/cost.md, "What is counted per flow run") is paid whichever kind runs it.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from doc_sections import markers, splice  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
#: us-east-1 list prices, arm64, free tiers not counted.
PRICES = {
    "lambda_gb_second": 0.0000133334,  # Lambda, arm64, first 7.5 B GB-s a month
    "lambda_request": 0.20 / 1e6,
    "fargate_vcpu_hour": 0.03238,  # Fargate, Linux/ARM
    "fargate_gb_hour": 0.00356,
    "ec2_t4g_small_hour": 0.0168,  # EC2 on-demand t4g.small (2 vCPU, 2 GiB)
}
SOURCES = [
    ("Lambda", "https://aws.amazon.com/lambda/pricing/"),
    ("Fargate", "https://aws.amazon.com/fargate/pricing/"),
    ("EC2 on-demand", "https://aws.amazon.com/ec2/pricing/on-demand/"),
]
#: The constructs' default sizes (infra/sluice_infra/pools): LambdaPool(memory_mb=1024),
#: FargatePool(cpu=1024, memory_mb=2048) and its dispatcher's 256 MB.
LAMBDA_MEMORY_GB = 1024 / 1024
FARGATE_VCPU = 1024 / 1024
FARGATE_MEMORY_GB = 2048 / 1024
DISPATCHER_MEMORY_GB = 256 / 1024
#: Lambda's longest run (15 minutes): a longer run cannot run on a Lambda pool.
LAMBDA_MAX_RUN_SECONDS = 900
#: Fargate bills at least one minute per task, from the start of the image pull to the stop.
FARGATE_MINIMUM_SECONDS = 60
#: Assumed, not measured here: what a run is billed besides its flow. Lambda: the claim, the
#: code fetch and the flow process's start in a warm function. Fargate: the image pull and
#: container start (billed; the provisioning before it is not). The dispatcher: two short
#: invocations per run (the start, then the stopped-task event).
LAMBDA_OVERHEAD_SECONDS = 1.0
FARGATE_BILLED_STARTUP_SECONDS = 20.0
DISPATCHER_SECONDS_PER_INVOCATION = 1.0
DISPATCHER_INVOCATIONS_PER_RUN = 2
#: The EC2 worker's default runs at once (`sluice:workerRunsPerInstance`).
EC2_RUNS_PER_INSTANCE = 4
RUN_LENGTHS = ((60, "1-minute run"), (600, "10-minute run"), (3600, "1-hour run"))
SECTION = "bench/pool_costs.py"


@dataclass(frozen=True)
class Kind:
    name: str
    sizing: str


def lambda_run(seconds: float) -> float | None:
    """A Lambda pool run: GB-s of the run plus its overhead, and one request; None when the
    run is longer than Lambda's 15 minutes."""
    if seconds > LAMBDA_MAX_RUN_SECONDS:
        return None
    billed = seconds + LAMBDA_OVERHEAD_SECONDS
    return billed * LAMBDA_MEMORY_GB * PRICES["lambda_gb_second"] + PRICES["lambda_request"]


def dispatcher_share() -> float:
    """The Fargate dispatcher's invocations for one run."""
    invocations = DISPATCHER_INVOCATIONS_PER_RUN
    return invocations * (DISPATCHER_SECONDS_PER_INVOCATION * DISPATCHER_MEMORY_GB
                          * PRICES["lambda_gb_second"] + PRICES["lambda_request"])


def fargate_run(seconds: float) -> float:
    """A Fargate pool run: the task's vCPU and memory for its billed time (one-minute minimum),
    plus the dispatcher's share."""
    billed_hours = max(FARGATE_MINIMUM_SECONDS, seconds + FARGATE_BILLED_STARTUP_SECONDS) / 3600
    task = billed_hours * (FARGATE_VCPU * PRICES["fargate_vcpu_hour"]
                           + FARGATE_MEMORY_GB * PRICES["fargate_gb_hour"])
    return task + dispatcher_share()


def ec2_run(seconds: float, runs_at_once: int) -> float:
    """An EC2 worker run: the instance's hour shared by the runs it holds at once, when it is
    always busy (idle hours come on top: divide by the share of time it is busy)."""
    return seconds / 3600 * PRICES["ec2_t4g_small_hour"] / runs_at_once


KINDS = (
    (Kind("Lambda pool", "1 GB arm64"), lambda_run),
    (Kind("Fargate pool", "1 vCPU, 2 GB arm64, + dispatcher"), fargate_run),
    (Kind("EC2 worker, 4 runs at once", "t4g.small, always busy"),
     lambda seconds: ec2_run(seconds, EC2_RUNS_PER_INSTANCE)),
    (Kind("EC2 worker, 1 run at a time", "t4g.small, always busy"),
     lambda seconds: ec2_run(seconds, 1)),
)


def money(value: float | None) -> str:
    if value is None:
        return "n/a (15-min limit)"
    return f"${value:.5f}" if value < 0.01 else f"${value:.4f}"


def table() -> str:
    """The per-run table in markdown."""
    header = "| Pool kind | Size | " + " | ".join(label for _, label in RUN_LENGTHS) + " |"
    rule = "|---|---|" + "---:|" * len(RUN_LENGTHS)
    rows = [f"| {kind.name} | {kind.sizing} | "
            + " | ".join(money(cost(seconds)) for seconds, _ in RUN_LENGTHS) + " |"
            for kind, cost in KINDS]
    return "\n".join([header, rule, *rows])


def section() -> str:
    """The section of docs/cost.md and docs/pools.md, between doc_sections markers."""
    begin, end = markers(SECTION)
    sources = ", ".join(f"[{name}]({url})" for name, url in SOURCES)
    p = PRICES
    return f"""{begin}
## Per run, by pool kind

The compute of one flow run at the pool constructs' default sizes, from `python
bench/pool_costs.py` (us-east-1 arm64 list prices: Lambda ${p['lambda_gb_second']:.10f}/GB-s and
${p['lambda_request'] * 1e6:.2f} per million requests; Fargate ${p['fargate_vcpu_hour']}/vCPU-h
and ${p['fargate_gb_hour']}/GB-h, one-minute minimum; EC2 t4g.small
${p['ec2_t4g_small_hour']}/h; {sources}). The control plane's share of a run is the same for
every kind (docs/cost.md, "What is counted per flow run").

{table()}

Assumed: a Lambda run is billed {LAMBDA_OVERHEAD_SECONDS:.0f} s besides its flow (claim, code,
process start; a cold start adds its init); a Fargate task
{FARGATE_BILLED_STARTUP_SECONDS:.0f} s of image pull and start; the dispatcher
{DISPATCHER_INVOCATIONS_PER_RUN} invocations of {DISPATCHER_SECONDS_PER_INVOCATION:.0f} s at
256 MB. An EC2 worker's figure holds only while it is always busy: busy a quarter of the time,
it costs four times as much per run ("A worker polling 24/7" in docs/cost.md has its fixed
cost).
{end}"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true",
                        help="splice the section into docs/cost.md and docs/pools.md")
    args = parser.parse_args(argv)
    print(table())
    if args.write:
        text = section()
        for name, before in (("cost.md", "## Free tiers (not counted above)"),
                             ("pools.md", "## Which kind to choose")):
            path = ROOT / "docs" / name
            if path.exists():
                path.write_text(splice(path.read_text(), SECTION, text, before=before))
                print(f"wrote the section into {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
