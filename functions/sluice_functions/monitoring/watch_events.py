"""The monitor's events about pools and workers (flow-run events come from the transitions):

* `sluice.worker.offline`: a worker not seen for `WORKER_ONLINE_WITHIN`, once per offline spell
  (the event's id is the spell's, and a spell already recorded is not recorded again). Workers
  last seen more than `OFFLINE_LOOKBACK` ago are left alone: their spell was reported then, or
  began before events existed.
* `sluice.pool.dead-letter`: a pool's dead-letter queue holds more messages than at the previous
  tick. The first tick of a monitor process only takes the baseline (a restarted monitor does
  not report an old dead letter again).

Both need the event recorder a composition root attached to the store
(`service.event_log.attach_recorder`); without one nothing is read.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from ..ports import RunQueue, RunStore
from ..service import event_log
from ..service.event_builders import WORKER_OFFLINE, dead_letter_event, worker_offline_event
from ..service.pools import WORKER_ONLINE_WITHIN

#: Offline spells that began longer ago than this are not reported.
OFFLINE_LOOKBACK = timedelta(hours=24)

def watch_pools_and_workers(*, store: RunStore, queue: RunQueue, now: datetime) -> int:
    """Record the worker-offline and dead-letter events due at `now`; returns how many."""
    recorder = event_log.recorder_of(store)
    if recorder is None:
        return 0
    ports = recorder.ports
    events = []
    for pool in store.list_pools():
        for worker in store.list_workers(pool.name):
            seen = worker.last_seen
            if seen is None or not now - OFFLINE_LOOKBACK < seen < now - WORKER_ONLINE_WITHIN:
                continue
            reported = ports.events.list_events(since=seen, names=[WORKER_OFFLINE],
                                                resource_id=worker.name, limit=20)
            if not any(e.related_of("pool") and e.related_of("pool")[0].id == pool.name
                       for e in reported.items):
                events.append(worker_offline_event(pool.name, worker.name, seen, now=now))
        try:
            depth = queue.depth(pool.name).dead_letter
        except Exception:  # noqa: BLE001 - a pool whose queue is gone has nothing to report
            continue
        previous = recorder.dead_letter_depths.get(pool.name)
        recorder.dead_letter_depths[pool.name] = depth
        if previous is not None and depth > previous:
            events.append(dead_letter_event(pool.name, depth, previous, now=now))
    event_log.record(events, ports=ports, now=now)
    return len(events)
