"""The disk space of the worker's code cache: each entry (a bundle's files, a git checkout, a
requirements venv) is pinned while a run uses it, and when the cache grows past its bound the
least recently used entries that no run holds are evicted.

Pins are shared `flock`s on a small lock file beside the entry, so they hold across threads
and across worker processes sharing one cache directory, and vanish with a process that dies;
an eviction takes the lock exclusively without waiting, and skips an entry it cannot take.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

from .unzip import remove_tree

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: pins are held within this process only
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("sluice.worker")

#: The cache's kinds of entry: `<root>/<kind>/<name>/`.
ENTRY_KINDS = ("bundles", "git", "venvs")
#: A temporary directory (an extraction, a removal) older than this was left by a crash.
STALE_TEMPORARY_SECONDS = 3600
TEMPORARY_PREFIXES = (".tmp-", ".trash-")
#: Where the entries' lock files live: `<root>/.locks/<kind>-<name>.lock`.
LOCKS_DIRECTORY = ".locks"


class CacheSpace:
    """Pins, last use and eviction of the entries under `root` (see the module docstring)."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self._guard = threading.Lock()
        self._pins: dict[object, list[tuple[Path, int]]] = {}
        self._pinned: Counter[Path] = Counter()
        self._sizes: dict[Path, int] = {}
        self._remove_stale_temporaries()

    def _lock_file(self, entry: Path) -> Path:
        # Kept apart from the entries (and never deleted: removing a lock file that another
        # process has open would let two processes hold "the" lock at once).
        locks = self.root / LOCKS_DIRECTORY
        locks.mkdir(parents=True, exist_ok=True)
        return locks / f"{entry.parent.name}-{entry.name}.lock"

    def pin(self, entry: Path, holder: object) -> None:
        """Keep `entry` until `release(holder)`; waits while an eviction removes it (the
        caller then finds it gone and fetches it again)."""
        fd = os.open(self._lock_file(entry), os.O_CREAT | os.O_RDWR, 0o600)
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_SH)
        with self._guard:
            self._pins.setdefault(holder, []).append((entry, fd))
            self._pinned[entry] += 1

    def release(self, holder: object) -> None:
        """Drop every pin of `holder` (a run that ended); unknown holders are ignored."""
        with self._guard:
            pins = self._pins.pop(holder, [])
            for entry, _ in pins:
                self._pinned[entry] -= 1
                if self._pinned[entry] <= 0:
                    del self._pinned[entry]
        for _, fd in pins:
            os.close(fd)  # closing the descriptor drops its flock

    def used(self, entry: Path, *, changed: bool = False) -> None:
        """Record a use (the entry's mtime is its last use); `changed` after it was (re)written
        so that its size is measured again."""
        if changed:
            self._sizes.pop(entry, None)
        try:
            os.utime(entry)
        except FileNotFoundError:
            pass

    def entries(self) -> list[Path]:
        found = []
        for kind in ENTRY_KINDS:
            directory = self.root / kind
            if directory.is_dir():
                found += [p for p in directory.iterdir()
                          if not p.name.startswith(".") and p.is_dir() and not p.is_symlink()]
        return found

    def size(self, entry: Path) -> int:
        if entry not in self._sizes:
            total = 0
            for directory, _, files in os.walk(entry):
                for name in files:
                    try:
                        total += os.lstat(os.path.join(directory, name)).st_size
                    except OSError:
                        pass
            self._sizes[entry] = total
        return self._sizes[entry]

    def total(self) -> int:
        return sum(self.size(e) for e in self.entries())

    def evict(self, keep: Path | None = None) -> list[Path]:
        """Remove least recently used, unpinned entries (never `keep`) until the cache is
        within its bound; returns what was removed."""
        entries = self.entries()
        total = sum(self.size(e) for e in entries)
        evicted: list[Path] = []
        for entry in sorted(entries, key=_last_use):
            if total <= self.max_bytes:
                break
            if entry == keep:
                continue
            size = self.size(entry)
            if self._remove_unless_pinned(entry):
                total -= size
                evicted.append(entry)
        if total > self.max_bytes:
            log.warning("code cache %s holds %d bytes, over its %d-byte bound, in entries "
                        "that running runs use", self.root, total, self.max_bytes)
        return evicted

    def _remove_unless_pinned(self, entry: Path) -> bool:
        with self._guard:
            if self._pinned.get(entry):
                return False
        fd = os.open(self._lock_file(entry), os.O_CREAT | os.O_RDWR, 0o600)
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return False  # another process's run holds it
            trash = self.root / f".trash-{uuid.uuid4().hex}"
            try:
                os.rename(entry, trash)  # atomic: the entry is whole or gone, never half
            except FileNotFoundError:
                return False
        finally:
            os.close(fd)
        self._sizes.pop(entry, None)
        remove_tree(trash)
        log.info("code cache: evicted %s", entry)
        return True

    def _remove_stale_temporaries(self) -> None:
        now = time.time()
        for directory in [self.root, *(self.root / kind for kind in ENTRY_KINDS)]:
            if not directory.is_dir():
                continue
            for path in directory.iterdir():
                if path.name.startswith(TEMPORARY_PREFIXES) and path.is_dir():
                    try:
                        if now - path.stat().st_mtime > STALE_TEMPORARY_SECONDS:
                            remove_tree(path)
                    except FileNotFoundError:
                        pass


def _last_use(entry: Path) -> float:
    try:
        return entry.stat().st_mtime
    except FileNotFoundError:
        return 0.0
