"""Ids that sort by creation time (microseconds, then randomness), so listings by id are
chronological without a second index."""

from __future__ import annotations

import os
import random
import time

# Ids need uniqueness, not secrecy (leases, which fence, come from `secrets`). A generator of
# our own, seeded from the OS, draws them without a system call: `os.urandom` releases the GIL,
# and in a flow whose pool threads or reporter thread hold it, each id then waited for a GIL
# handoff (~20 us per task run). User code seeding the `random` module cannot touch it.
_id_bits = random.Random()
if hasattr(os, "register_at_fork"):  # a forked child must not draw its parent's sequence
    os.register_at_fork(after_in_child=_id_bits.seed)


def new_id() -> str:
    """32 hex characters: 14 of microseconds since the epoch, 18 random."""
    return f"{time.time_ns() // 1000:014x}{_id_bits.getrandbits(72):018x}"
