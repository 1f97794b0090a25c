"""The largest numbers Sluice takes where they enter: request models, deployments, and the
options of `@flow` / `@task`.

Every bound is far beyond what a working flow needs and close enough that nothing derived from
it (a retry time, a deadline, a count of slots) can overflow or stall the control plane. A
value over its bound is refused with an error naming the field and the bound (422 from the API,
`ConfigurationError` from the decorators). Floats must also be finite: NaN and infinity are
refused everywhere. Records stored before a bound existed are still read, and the control plane
clamps what it derives from them (`sluice_functions.timemath`).
"""

from __future__ import annotations

import math
import sys
from typing import Annotated

from pydantic import AfterValidator

_DAY = 24 * 60 * 60

#: Retries of one run or task. Each attempt is a claim, a queue message and history entries; a
#: run that failed a thousand times is broken, not flaky.
MAX_RETRIES = 1_000
#: Seconds before a retry: 7 days. A longer wait is a schedule, not a retry delay, and a run
#: waiting longer than a few weeks would outlive its record's retention (30 days by default).
MAX_RETRY_DELAY_SECONDS = 7 * _DAY
#: A flow's or task's timeout: 30 days, the default retention of its run's record.
MAX_TIMEOUT_SECONDS = 30 * _DAY
#: A deployment's or pool's concurrency limit, and a worker's slots: 10,000. Every claim counts
#: the slots in use; a larger limit limits nothing (leave it unset instead).
MAX_CONCURRENCY_LIMIT = 10_000
#: An interval schedule's interval: a leap year (yearly or rarer: use a cron schedule).
MAX_INTERVAL_SECONDS = 366 * _DAY
#: A deployment's `max_lateness_seconds`: a leap year.
MAX_LATENESS_SECONDS = 366 * _DAY
#: Runs one backfill creates (and so its largest `max_active`); split longer windows.
MAX_BACKFILL_RUNS = 10_000
#: A task's `retry_jitter_factor` (the delay varies by up to this share of itself).
MAX_RETRY_JITTER_FACTOR = 10.0
#: A flow's `max_workers`: threads of its task runner. More threads than this only thrash (and
#: each holds a stack); spread larger fan-outs over the Dask task runner or subflows.
MAX_FLOW_WORKERS = 1_000
#: A task's `cache_expiration`: ten years (leave it unset for a cache that never expires). A
#: longer one overflows the date it is added to.
MAX_CACHE_EXPIRATION_SECONDS = 3_660 * _DAY
#: Longest tag (here, not in `runs`, so the name rules load without the run models).
MAX_TAG_CHARS = 128


def finite(value: float) -> float:
    """A float read from a stored record, made finite: NaN reads as 0 and an infinity as the
    largest float of its sign. Records written before the bounds (or by hand, as the JSON tokens
    `Infinity`/`NaN`) are then still read and written back, and arithmetic on them is clamped
    by the control plane instead of failing; requests refuse non-finite numbers outright."""
    if math.isnan(value):
        return 0.0
    if math.isinf(value):
        return math.copysign(sys.float_info.max, value)
    return value


#: A float field of a stored model (see `finite`).
StoredFloat = Annotated[float, AfterValidator(finite)]
