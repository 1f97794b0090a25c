"""The monitor's dead-letter gauges: one alarm watches every pool's dead-letter queue, including
pools created after the stack was deployed (`sluice pool create`), because the monitor reports
each tick what it finds in all of them:

* `DeadLetterMessages` with dimension `pool`: one line per pool on the dashboard;
* `DeadLetterMessages` with no dimension: the total over all pools, which the stack's single
  dead-letter alarm watches (CloudWatch alarms cannot SEARCH over a dimension's values).
"""

from __future__ import annotations

import logging

from ..ports import Metrics, RunQueue, RunStore

logger = logging.getLogger(__name__)

DEAD_LETTER_MESSAGES = "DeadLetterMessages"


def report_dead_letters(*, store: RunStore, queue: RunQueue, metrics: Metrics) -> int:
    """Gauge every pool's dead-letter depth and their total; returns the total. A pool whose
    queue cannot be read is left out (logged); this never raises for one pool."""
    total = 0
    for pool in store.list_pools():
        try:
            depth = queue.depth(pool.name).dead_letter
        except Exception:  # noqa: BLE001 - a pool whose queue is gone has nothing to report
            logger.warning("monitor: dead-letter depth of pool %s unreadable", pool.name,
                           extra={"pool": pool.name}, exc_info=True)
            continue
        metrics.gauge("DeadLetterMessages", depth, dimensions={"pool": pool.name})
        total += depth
    metrics.gauge("DeadLetterMessages", total)
    return total
