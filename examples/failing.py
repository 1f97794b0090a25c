"""A flow that fails, to show what a failure looks like: the state, the message, the logs."""

from __future__ import annotations

from sluice import flow, task


@task
def validate_rows(rows: list[dict]) -> int:
    bad = [r for r in rows if r.get("amount", 0) < 0]
    if bad:
        raise ValueError(f"{len(bad)} row(s) have a negative amount, first: {bad[0]}")
    return len(rows)


@flow(name="strict-import")
def strict_import(rows: list[dict]) -> int:
    return validate_rows(rows)


if __name__ == "__main__":
    strict_import([{"amount": 3}, {"amount": -1}])
