"""An ETL-like flow: extract pages concurrently (one flaky), transform each, load a summary."""

from __future__ import annotations

import random

from sluice import flow, get_run_logger, task

_failures: dict[int, int] = {}


@task(retries=2, retry_delay_seconds=0.2, tags=["io"])
def extract(page: int) -> list[dict]:
    """Fetch one page of orders; page 3 fails once, like a flaky upstream API."""
    if page == 3 and _failures.setdefault(page, 0) == 0:
        _failures[page] += 1
        raise ConnectionError(f"upstream timed out fetching page {page}")
    rng = random.Random(page)
    return [{"order": page * 100 + i, "amount": round(rng.uniform(5, 200), 2)}
            for i in range(5)]


@task
def transform(rows: list[dict]) -> float:
    return round(sum(r["amount"] for r in rows), 2)


@task(persist_result=True)
def load(totals: list[float]) -> dict:
    summary = {"pages": len(totals), "revenue": round(sum(totals), 2)}
    get_run_logger().info("loaded %s", summary)
    return summary


@flow(name="orders-etl", log_prints=True)
def orders_etl(pages: int = 6) -> dict:
    raw = extract.map(range(1, pages + 1))
    totals = transform.map(raw)
    print(f"extracted and transformed {pages} pages")
    return load([t.result() for t in totals])


if __name__ == "__main__":
    print(orders_etl())
