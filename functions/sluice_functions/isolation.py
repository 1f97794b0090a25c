"""One bad record never stops a tick: the scheduler and the monitor handle each run, deployment,
schedule and backfill on its own.

Whatever handling one record raises - a `SluiceError` from the store, or any other exception a
stored value provokes (an overflow, a schedule that no longer parses, a bug) - is logged with
the record's id and the traceback, counted in the `TickRecordErrors` metric (dimension `tick`:
`scheduler` or `monitor`) and in the tick's `failed` count, and the tick goes on with the next
record. The next tick tries the record again, so a transient error heals by itself and a
permanent one shows as a steady count. Only a failure to list the records at all (the store is
unreachable) ends a tick early: then the handler raises, and Lambda records the error.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from .ports import Metrics

logger = logging.getLogger("sluice_functions.ticks")

#: The metric counting records a tick skipped because handling them raised.
TICK_RECORD_ERRORS = "TickRecordErrors"


class CountsFailures(Protocol):
    failed: int


#: "flow run <id>" / "deployment <id>" at the start of a record's label (`what`).
_LABELLED_IDS = (("flow_run_id", re.compile(r"^flow run (\S+)")),
                 ("deployment_id", re.compile(r"^deployment (\S+)")))


def record_log_keys(what: str) -> dict[str, str]:
    """The log keys of a record's label ("flow run 1234" -> flow_run_id), so that a skipped
    record's line is found by the same Logs Insights filter as the API's lines about it."""
    keys = {}
    for key, pattern in _LABELLED_IDS:
        match = pattern.match(what)
        if match:
            keys[key] = match.group(1)
    return keys


def record_failed(tick: str, what: str, *, metrics: Metrics,
                  result: CountsFailures | None = None) -> None:
    """Log (with the traceback of the exception being handled) and count one skipped record;
    `what` names it with its id, e.g. "flow run 1234"."""
    logger.exception("%s tick: %s failed; skipped until the next tick", tick, what,
                     extra=record_log_keys(what))
    try:
        metrics.count("TickRecordErrors", dimensions={"tick": tick})
    except Exception:  # noqa: BLE001 - a metrics outage must not stop the tick either
        logger.warning("%s tick: could not count the failure of %s", tick, what)
    if result is not None:
        result.failed += 1


@contextmanager
def isolated(tick: str, what: str, *, metrics: Metrics,
             result: CountsFailures | None = None) -> Iterator[None]:
    """Run the block for one record; any exception it raises is `record_failed` and
    swallowed."""
    try:
        yield
    except Exception:  # noqa: BLE001 - any failure of one record is that record's alone
        record_failed(tick, what, metrics=metrics, result=result)
