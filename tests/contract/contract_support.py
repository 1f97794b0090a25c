"""Builders of valid models and helpers shared by the contract suites."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

from sluice.models import (
    Deployment,
    FlowRun,
    LogLevel,
    LogRecord,
    Page,
    Schedule,
    State,
    StateType,
    TaskRun,
)

T = TypeVar("T")

#: Scheduled times of the store tests hang off this instant (whole seconds, so offsets of a
#: fraction of a second give a mix of timestamps with and without microseconds).
BASE_TIME = datetime(2031, 3, 14, 12, 0, 0, tzinfo=timezone.utc)


def new_id(prefix: str = "") -> str:
    return f"{prefix}{uuid.uuid4().hex}"


def at(seconds: float) -> datetime:
    """`BASE_TIME` plus `seconds`."""
    return BASE_TIME + timedelta(seconds=seconds)


def state(
    state_type: StateType = StateType.SCHEDULED, name: str | None = None, **fields: Any
) -> State:
    return State(type=state_type, name=name or "", **fields)


def flow_run(**fields: Any) -> FlowRun:
    """A valid Scheduled flow run; `fields` override any field."""
    values: dict[str, Any] = {
        "id": new_id("fr-"),
        "flow_name": "etl",
        "pool": "default",
        "state": state(StateType.SCHEDULED, scheduled_time=BASE_TIME),
        "scheduled_at": BASE_TIME,
    }
    values.update(fields)
    return FlowRun(**values)


def task_run(flow_run_id: str, **fields: Any) -> TaskRun:
    """A valid Running task run of `flow_run_id` at version 1."""
    values: dict[str, Any] = {
        "id": new_id("tr-"),
        "flow_run_id": flow_run_id,
        "task_name": "extract",
        "name": "extract-0",
        "state": state(StateType.RUNNING),
        "version": 1,
    }
    values.update(fields)
    return TaskRun(**values)


def deployment(flow_name: str = "etl", name: str = "nightly", **fields: Any) -> Deployment:
    values: dict[str, Any] = {
        "id": new_id("dep-"),
        "flow_name": flow_name,
        "name": name,
        "entrypoint": "flows/etl.py:etl",
        "created": BASE_TIME,
        "updated": BASE_TIME,
        "created_by": "arn:aws:iam::123456789012:user/alice",
    }
    values.update(fields)
    return Deployment(**values)


def hourly_schedule() -> Schedule:
    return Schedule(cron="0 * * * *", timezone="Europe/Paris", parameters={"full": True})


def log_record(
    flow_run_id: str, timestamp: datetime, message: str = "", **fields: Any
) -> LogRecord:
    values: dict[str, Any] = {
        "id": new_id("log-"),
        "flow_run_id": flow_run_id,
        "timestamp": timestamp,
        "level": LogLevel.INFO,
        "logger": "sluice.flow",
        "message": message or f"line at {timestamp.isoformat()}",
    }
    values.update(fields)
    return LogRecord(**values)


def drain_pages(
    read_page: Callable[[str | None], Page[T]], *, max_pages: int = 200
) -> list[Page[T]]:
    """Every page of a paginated query, following `next_cursor` until it is None."""
    pages = [read_page(None)]
    while pages[-1].next_cursor is not None:
        assert len(pages) < max_pages, "next_cursor never became None"
        pages.append(read_page(pages[-1].next_cursor))
    return pages


def items_of(pages: list[Page[T]]) -> list[T]:
    return [item for page in pages for item in page.items]


def bad_cursors() -> Iterator[str]:
    """Strings no adapter can have issued as a cursor."""
    yield "not a cursor!"
    yield "eyJub3QiOiAianNvbg"  # base64 of a truncated JSON document
    yield "AAAA"  # base64 of three zero bytes
    yield "e30"  # base64 of "{}"


@dataclass
class ThreadOutcomes:
    results: list[Any]
    errors: list[BaseException]


def run_concurrently(action: Callable[[int], Any], threads: int) -> ThreadOutcomes:
    """Run `action(i)` on `threads` threads released together; collect results and exceptions."""
    start = threading.Barrier(threads)
    lock = threading.Lock()
    outcomes = ThreadOutcomes(results=[], errors=[])

    def worker(index: int) -> None:
        start.wait()
        try:
            result = action(index)
        except BaseException as exc:  # noqa: BLE001 - every outcome is part of the assertion
            with lock:
                outcomes.errors.append(exc)
        else:
            with lock:
                outcomes.results.append(result)

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in pool), "a thread did not finish"
    return outcomes
