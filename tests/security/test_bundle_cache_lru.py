"""Attack: the worker's code cache was never evicted: deploying new bundles (or new commits,
or new requirements) filled the worker's disk. The cache now has a size bound and evicts the
least recently used entries that no running run holds."""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from pathlib import Path

from sluice.models import CodeSource, SourceKind
from sluice_worker.sources import CodeCache, CodeCacheSettings

ENTRY_BYTES = 10_000


def bundle(tag: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("flows.py", tag.encode() * (ENTRY_BYTES // len(tag)))
    return buffer.getvalue()


class Bundles:
    """A fake control plane's bundle downloads (counts them, to see re-fetches)."""

    def __init__(self, *tags: str) -> None:
        self.data = {hashlib.sha256(bundle(t)).hexdigest(): bundle(t) for t in tags}
        self.digest = {t: hashlib.sha256(bundle(t)).hexdigest() for t in tags}
        self.downloads: list[str] = []

    def download(self, digest: str) -> bytes:
        self.downloads.append(digest)
        return self.data[digest]

    def source(self, tag: str) -> CodeSource:
        return CodeSource(kind=SourceKind.BUNDLE, bundle_sha256=self.digest[tag])


def cache_of(tmp_path: Path, bundles: Bundles, entries_that_fit: int) -> CodeCache:
    return CodeCache(tmp_path / "cache", download_bundle=bundles.download,
                     settings=CodeCacheSettings(
                         cache_max_bytes=entries_that_fit * ENTRY_BYTES + ENTRY_BYTES // 2))


def age(entry: Path, seconds_ago: int) -> None:
    """Set an entry's last use explicitly (tests never depend on the clock's pace)."""
    stamp = 1_700_000_000 - seconds_ago
    os.utime(entry, (stamp, stamp))


def test_the_least_recently_used_entry_is_evicted_past_the_bound(tmp_path):
    # Given a cache that holds two bundles, with a used long ago and b used recently
    bundles = Bundles("a", "b", "c")
    cache = cache_of(tmp_path, bundles, entries_that_fit=2)
    a, b = cache.directory(bundles.source("a")), cache.directory(bundles.source("b"))
    age(a, 3600)
    age(b, 60)
    # When a third bundle is fetched
    c = cache.directory(bundles.source("c"))
    # Then the least recently used one (a) is gone, b and c stay
    assert not a.exists() and b.exists() and c.exists()
    assert cache.space.total() <= cache.settings.cache_max_bytes
    # And fetching a again downloads it again (a cache miss, not an error)
    assert (cache.directory(bundles.source("a")) / "flows.py").is_file()
    assert bundles.downloads.count(bundles.digest["a"]) == 2


def test_an_entry_a_running_run_holds_is_never_evicted(tmp_path):
    # Given a cache that holds one bundle, and a run holding bundle a (least recently used)
    bundles = Bundles("a", "b", "c")
    cache = cache_of(tmp_path, bundles, entries_that_fit=1)
    running = object()
    a = cache.directory(bundles.source("a"), holder=running)
    age(a, 3600)
    # When other bundles are fetched past the bound
    b = cache.directory(bundles.source("b"))
    age(b, 1800)
    cache.directory(bundles.source("c"))
    # Then the held entry survives (b, unheld, went instead)
    assert a.exists() and (a / "flows.py").is_file()
    assert not b.exists()
    # And once the run ended, a is evicted like any other entry
    cache.release(running)
    age(a, 3600)
    cache.directory(bundles.source("b"))
    assert not a.exists()


def test_another_worker_process_holding_an_entry_keeps_it(tmp_path):
    # Given two caches on the same directory (two workers on one host)
    bundles = Bundles("a", "b")
    first = cache_of(tmp_path, bundles, entries_that_fit=1)
    second = cache_of(tmp_path, bundles, entries_that_fit=1)
    a = first.directory(bundles.source("a"), holder="run-1")
    age(a, 3600)
    # When the second one fetches past the bound, Then the first one's entry stays
    second.directory(bundles.source("b"))
    assert a.exists()


def test_the_bound_is_a_setting(monkeypatch):
    monkeypatch.setenv("SLUICE_WORKER_CACHE_MAX_BYTES", "12345")
    monkeypatch.setenv("SLUICE_WORKER_BUNDLE_MAX_EXTRACTED_BYTES", "999")
    settings = CodeCacheSettings()
    assert settings.cache_max_bytes == 12345 and settings.bundle_max_extracted_bytes == 999
    assert CodeCacheSettings.model_fields["cache_max_bytes"].default == 2 * 1024 ** 3
