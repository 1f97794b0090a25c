"""Ids that sort by creation time (microseconds, then randomness), so listings by id are
chronological without a second index."""

from __future__ import annotations

import os
import time


def new_id() -> str:
    """32 hex characters: 14 of microseconds since the epoch, 18 random."""
    return f"{time.time_ns() // 1000:014x}{os.urandom(9).hex()}"
