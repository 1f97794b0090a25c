"""The check every API request passes: is the stored data at a layout this code understands?"""

from __future__ import annotations

import time
from collections.abc import Callable

from ..config import SCHEMA_VERSION
from .status import SchemaStatus, check_understood

#: The data's version is re-read at most this often per process: a migration is an operator's
#: step taking minutes, and a read per request would double the API's DynamoDB reads.
SCHEMA_CHECK_INTERVAL_SECONDS = 60.0


class SchemaGuard:
    """Refuses work (`SchemaTooNew`, 503 with the fix) while the data is newer than this code
    understands; reads the status through `read_status` at most every `interval_seconds`."""

    def __init__(self, read_status: Callable[[], SchemaStatus], *,
                 understood: int = SCHEMA_VERSION,
                 interval_seconds: float = SCHEMA_CHECK_INTERVAL_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._read_status = read_status
        self._understood = understood
        self._interval = interval_seconds
        self._clock = clock
        self._status: SchemaStatus | None = None
        self._read_at = 0.0

    def check(self) -> None:
        """Raise `SchemaTooNew` if the data (as last read) is too new for this code."""
        check_understood(self._current(), self._understood)

    def data_version(self) -> int:
        """The schema version the data is at (as last read): stores write a newer layout only
        once the data is there (`config.HISTORY_INLINE_SCHEMA`)."""
        return self._current().version

    def _current(self) -> SchemaStatus:
        now = self._clock()
        if self._status is None or now - self._read_at >= self._interval:
            self._status = self._read_status()
            self._read_at = now
        return self._status
