"""Flows the console's browser tests and screenshots deploy: each shows the console something
(logs at several levels, a failure that a marker file turns into success, a retried task and a
cached one, a long run to cancel, a subflow)."""

from __future__ import annotations

import time
from pathlib import Path

from sluice import flow, get_run_logger, task


@task
def extract(batch: int) -> list[int]:
    get_run_logger().info("extracting batch %d", batch)
    return list(range(batch * 10, batch * 10 + 10))


@task
def load(rows: list[int]) -> int:
    logger = get_run_logger()
    logger.debug("loading %d rows (debug detail)", len(rows))
    if sum(rows) % 7 == 0:
        logger.warning("checksum divisible by seven: loaded anyway")
    return len(rows)


@flow(description="Extracts and loads a few batches; logs at info, debug and warning.")
def nightly_etl(batches: int = 3, region: str = "eu-central-1") -> int:
    logger = get_run_logger()
    logger.info("starting the nightly load for %s", region)
    loaded = sum(load(extract(b)) for b in range(batches))
    logger.warning("region %s: %d rows loaded, 0 rejected", region, loaded)
    return loaded


@flow(description="Fails until its marker file exists: retry it after creating the marker.")
def flaky_report(marker: str) -> str:
    logger = get_run_logger()
    if not Path(marker).exists():
        logger.error("the report source is unavailable (no marker at %s)", marker)
        raise RuntimeError("the report source is unavailable")
    logger.info("report written")
    return "report written"


@task(retries=2, retry_delay_seconds=0)
def fetch_prices(counter: str) -> int:
    """Fails on its first attempt of each run (a counter file per run), then succeeds."""
    path = Path(counter)
    attempts = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(attempts))
    if attempts == 1:
        raise ConnectionError("price feed timed out")
    return 42


@task(cache_key_fn=lambda context, parameters: "fx-rates-today")
def fx_rates() -> float:
    return 1.08


@flow(persist_result=True, description="A retried task and a cached one.")
def pricing(counter: str) -> float:
    first = fx_rates()
    second = fx_rates()  # the same cache key: a Cached task run
    return fetch_prices(counter) * first * second


@flow(description="Runs for a long time: the tests cancel it.")
def long_backfill(seconds: float = 600.0) -> None:
    get_run_logger().info("backfilling for up to %.0f s", seconds)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.1)


@flow
def child_step(label: str) -> str:
    get_run_logger().info("child %s", label)
    return label


@flow(description="Calls a subflow.")
def parent_pipeline() -> str:
    return child_step("part one")
