"""Attack: a bundle is extracted by every worker that runs the deployment. A 306 KB bundle
expanding to 300 MB was extracted without limit; members may also try to leave the cache
(`../`, absolute paths) or plant symlinks. Each test: the run's code is refused with
`CodeUnavailable` naming the problem, and nothing is left on the worker's disk."""

from __future__ import annotations

import hashlib
import io
import stat
import struct
import zipfile
from pathlib import Path

import pytest

from sluice.models import CodeSource, SourceKind
from sluice_worker.sources import CodeCache, CodeCacheSettings, CodeUnavailable
from sluice_worker.unzip import UnsafeArchive, extract


def zip_of(members: dict[str, bytes], *, modes: dict[str, int] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (modes or {}).get(name, 0o100644) << 16
            archive.writestr(info, content)
    return buffer.getvalue()


def bomb(megabytes: int) -> bytes:
    """One member of `megabytes` MB of zeros, written in chunks (never all in memory)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive, \
            archive.open("data.bin", "w", force_zip64=True) as member:
        chunk = bytes(1_000_000)
        for _ in range(megabytes):
            member.write(chunk)
    return buffer.getvalue()


def fetch(tmp_path: Path, data: bytes, **limits) -> tuple[Path, CodeUnavailable | None]:
    """Run the worker's fetch of a bundle whose bytes are `data`; the cache and the error."""
    cache_root = tmp_path / "cache"
    cache = CodeCache(cache_root, download_bundle=lambda digest: data,
                      settings=CodeCacheSettings(**limits))
    source = CodeSource(kind=SourceKind.BUNDLE, bundle_sha256=hashlib.sha256(data).hexdigest())
    try:
        cache.directory(source, entrypoint="flows.py:main")
    except CodeUnavailable as exc:
        return cache_root, exc
    return cache_root, None


def files_left(cache_root: Path) -> list[Path]:
    """Everything on disk but the (empty) lock files that pins use."""
    return [p for p in cache_root.rglob("*") if p.is_file() and not p.name.endswith(".lock")]


def test_the_issues_306_kb_bundle_expanding_to_300_mb_is_refused(tmp_path):
    # Given the issue's bundle: ~300 KB of deflated zeros that expand to 300 MB
    data = bomb(300)
    assert len(data) < 400_000
    # When a worker fetches it
    cache_root, refused = fetch(tmp_path, data)
    # Then it is refused by its compression ratio, before a byte is written
    assert refused is not None and "compression ratio over 100:1" in str(refused)
    assert files_left(cache_root) == []
    assert not (cache_root / "bundles").exists() or not any((cache_root / "bundles").iterdir())


def test_a_bundle_expanding_past_the_size_limit_is_refused(tmp_path):
    data = zip_of({"flows.py": b"x = 1\n" * 2000, "more.py": b"y = 2\n" * 2000})
    cache_root, refused = fetch(tmp_path, data, bundle_max_extracted_bytes=10_000)
    assert refused is not None and "over the limit of 10,000" in str(refused)
    assert "SLUICE_WORKER_BUNDLE_MAX_EXTRACTED_BYTES" in str(refused)
    assert files_left(cache_root) == []


def test_a_bundle_with_too_many_members_is_refused(tmp_path):
    data = zip_of({f"m{i}.py": b"" for i in range(30)})
    cache_root, refused = fetch(tmp_path, data, bundle_max_members=20)
    assert refused is not None and "30 members, over the limit of 20" in str(refused)
    assert files_left(cache_root) == []


@pytest.mark.parametrize("name", ["../escaped.py", "/etc/cron.d/evil", "a/../../b.py",
                                  "..\\evil.py", "C:/evil.py"])
def test_a_member_leaving_the_bundle_directory_is_refused(tmp_path, name):
    data = zip_of({"flows.py": b"", name: b"owned"})
    cache_root, refused = fetch(tmp_path, data)
    assert refused is not None and "absolute or parent path" in str(refused)
    assert files_left(cache_root) == []
    assert not (tmp_path / "escaped.py").exists() and not (tmp_path / "b.py").exists()


def test_a_symlink_member_is_refused(tmp_path):
    data = zip_of({"flows.py": b"", "keys": b"/root/.ssh"},
                  modes={"keys": stat.S_IFLNK | 0o777})
    cache_root, refused = fetch(tmp_path, data)
    assert refused is not None and "'keys' is a symlink" in str(refused)
    assert files_left(cache_root) == []


def lying_sizes(data: bytes, declared: int) -> bytes:
    """`data` with every member's uncompressed size rewritten to `declared` in both the
    local header and the central directory (the CRC still describes the real content)."""
    patched = bytearray(data)
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = patched.find(signature)
        while at != -1:
            struct.pack_into("<I", patched, at + offset, declared)
            at = patched.find(signature, at + 4)
    return bytes(patched)


def test_headers_that_lie_about_sizes_do_not_get_past_the_limit(tmp_path):
    # Given a member that declares 10 bytes but inflates to 50 KB
    data = lying_sizes(zip_of({"flows.py": b"a" * 50_000}), declared=10)
    # When it is extracted, Then it is refused (bytes are counted, and the CRC fails)
    destination = tmp_path / "out"
    destination.mkdir()
    with pytest.raises(UnsafeArchive):
        extract(data, destination)
    # And through the worker nothing is left behind
    cache_root, refused = fetch(tmp_path, data)
    assert refused is not None and "refused" in str(refused)
    assert files_left(cache_root) == []


def test_a_good_bundle_is_extracted_whole_and_reused(tmp_path):
    data = zip_of({"flows.py": b"x = 1\n", "pkg/helpers.py": b"y = 2\n"})
    cache_root, refused = fetch(tmp_path, data)
    assert refused is None
    entry = cache_root / "bundles" / hashlib.sha256(data).hexdigest()
    assert (entry / "pkg" / "helpers.py").read_bytes() == b"y = 2\n"
    assert (entry / ".complete").exists()
    # no temporary directory is left beside it
    assert [p.name for p in (cache_root / "bundles").iterdir() if p.is_dir()] == [entry.name]
