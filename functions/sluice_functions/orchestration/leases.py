"""How long a claimed attempt's lease lasts, how often it must be renewed, and when the control
plane may declare the attempt dead.

One policy, derived from one setting (`SLUICE_HEARTBEAT_TIMEOUT_SECONDS`), is told to every
holder in the claim and heartbeat answers, so a worker can never beat more slowly than the
control plane expects:

* the lease lasts `duration` from each renewal (the holder measures it from the moment it *sent*
  the renewal, which is before the control plane wrote it, so the holder's deadline always comes
  first);
* holders renew every `heartbeat_interval` (a third of the lease: two renewals may be lost);
* a holder that could not renew stops its whole process group at its deadline (self-fencing);
* the monitor declares the attempt Crashed only after `duration + margin` of silence. The margin
  covers the holder's clock running slow against the control plane's (a rate error, not an
  offset: both measure intervals) and the time a fence takes to kill a process group.

So two attempts of a run never overlap as long as the holder's clock rate errs by less than
`margin / duration` (10 %, against the ~0.01 % of an unsynchronised quartz clock) and its fence
acts within the margin (docs/reliability.md, "Leases and fencing").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

#: The longest lease the control plane grants (`SLUICE_HEARTBEAT_TIMEOUT_SECONDS` is bounded by
#: it in `config`): a stored expiry further from its last renewal than this is not believed.
MAX_LEASE = timedelta(days=1)
#: Least margin between a lease's expiry and the crash verdict.
MIN_MARGIN_SECONDS = 2.0
#: The margin as a share of the lease (see the module docstring).
MARGIN_FRACTION = 0.1
#: Renewals per lease.
RENEWALS_PER_LEASE = 3


@dataclass(frozen=True)
class LeasePolicy:
    """The lease terms of one control plane (the heartbeat timeout, seen from both sides)."""

    duration: timedelta = timedelta(seconds=90)

    @classmethod
    def of_seconds(cls, seconds: float) -> LeasePolicy:
        return cls(timedelta(seconds=float(seconds)))

    @property
    def seconds(self) -> float:
        return self.duration.total_seconds()

    @property
    def heartbeat_interval_seconds(self) -> float:
        return self.seconds / RENEWALS_PER_LEASE

    @property
    def margin(self) -> timedelta:
        return timedelta(seconds=max(MIN_MARGIN_SECONDS, MARGIN_FRACTION * self.seconds))

    def expires_at(self, renewed_at: datetime) -> datetime:
        """When a lease renewed at `renewed_at` expires (server time)."""
        return renewed_at + self.duration

    def silent_since(self, now: datetime) -> datetime:
        """An attempt whose last renewal is older than this is dead: its lease expired more
        than `margin` ago, so its holder has fenced itself."""
        return now - self.duration - self.margin


#: Lease terms where a caller names none (tests; the API passes the configured ones).
DEFAULT_LEASES = LeasePolicy()
