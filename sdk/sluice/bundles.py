"""Code bundles: the project directory zipped reproducibly (same files, same bytes, same
hash), honouring `.gitignore`, `.sluiceignore` and the default exclusions of secret-looking
files (see `sluice.bundle_rules`), uploaded to the control plane's storage.

A bundle never follows a symlink out of the project: a link whose target leaves it is refused
(exclude it, or copy the file in). A link to a file inside the project is packed as that file's
content; a link to a directory is refused (the zip holds regular files only, so a bundle can
never carry a link that the worker would follow).
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .bundle_rules import IGNORE_FILE, Exclusion, IgnoreMatcher
from .exceptions import ConfigurationError
from .models import MAX_BUNDLE_BYTES, BundleUploadRequest, CodeSource, SourceKind

if TYPE_CHECKING:
    from .client import SluiceClient

__all__ = ["IGNORE_FILE", "BundleFile", "BundlePlan", "build_bundle", "pack", "plan_bundle",
           "project_files", "upload_bundle", "upload_planned"]

_EPOCH = (1980, 1, 1, 0, 0, 0)  # zip timestamps are fixed so equal content hashes equally
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)


@dataclass(frozen=True)
class BundleFile:
    """A file the bundle holds."""

    #: Its path inside the bundle (relative to the project, `/`-separated).
    name: str
    size: int
    #: What is read: the file itself, or the target of an in-project symlink.
    source: Path
    #: The link's target, relative to the project, when `name` is a symlink.
    link_target: str | None = None


@dataclass(frozen=True)
class BundlePlan:
    """What a bundle of `root` would hold and what it leaves out (nothing is read yet)."""

    root: Path
    files: tuple[BundleFile, ...]
    excluded: tuple[Exclusion, ...]

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def default_exclusions(self) -> list[Exclusion]:
        """Left out by the built-in rules (the user may not know): shown by `--dry-run`."""
        return [e for e in self.excluded if e.by_default]

    @property
    def secret_exclusions(self) -> list[Exclusion]:
        return [e for e in self.excluded if e.secret]

    def require(self, name: str) -> None:
        """Refuse a plan that leaves out `name` (the entrypoint must ship)."""
        if any(f.name == name for f in self.files):
            return
        why = next((e for e in self.excluded
                    if name == e.path or name.startswith(e.path.rstrip("/") + "/")), None)
        if why is None:
            raise ConfigurationError(f"{name} is not in the bundle of {self.root} (is it "
                                     "ignored by git?): commit it or move it into the project")
        raise ConfigurationError(
            f"{name} is left out of the bundle by {why.reason}: add the line `!/{name}` to "
            f"{IGNORE_FILE} to ship it")


def plan_bundle(root: Path) -> BundlePlan:
    """The files a bundle of `root` holds, and the exclusions. Inside a git work tree git
    decides what `.gitignore` excludes (tracked files are listed too, so the default and
    `.sluiceignore` exclusions are applied to them as well); elsewhere `.gitignore` patterns
    are applied here. Raises `ConfigurationError` for a symlink that leaves the project."""
    root = Path(root).resolve()
    if not root.is_dir():
        raise ConfigurationError(f"{root} is not a directory: pass the project with "
                                 "--project-dir")
    listed = _git_listed(root)
    matcher = IgnoreMatcher.for_project(root, with_gitignore=listed is None)
    excluded: dict[str, Exclusion] = {}
    files: list[BundleFile] = []
    for name in (listed if listed is not None else _walk(root, matcher, excluded)):
        path = root / name
        if path.is_symlink():
            is_dir = path.is_dir()
        elif path.is_file():
            is_dir = False
        else:
            continue  # a submodule's directory, a socket, a file removed since git listed it
        why = matcher.exclusion(name, is_dir)
        if why is not None:
            excluded.setdefault(why.path, why)
            continue
        file = _bundle_file(root, name, path)
        # A link must not smuggle out what its target's own rules leave out (`cfg -> .env`).
        target_why = matcher.exclusion(file.link_target, False) if file.link_target else None
        if target_why is not None:
            excluded.setdefault(name, Exclusion(path=f"{name} -> {file.link_target}",
                                                 rule=target_why.rule))
            continue
        files.append(file)
    return BundlePlan(root=root, files=tuple(sorted(files, key=lambda f: f.name)),
                      excluded=tuple(sorted(excluded.values(), key=lambda e: e.path)))


def _git_listed(root: Path) -> list[str] | None:
    """Tracked and untracked-but-not-ignored paths, or None outside a git work tree."""
    try:
        listed = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "--cached",
                                 "--others", "--exclude-standard"], capture_output=True,
                                check=True).stdout.decode().split("\0")
    except (OSError, subprocess.CalledProcessError):
        return None
    return sorted({name for name in listed if name})


def _walk(root: Path, matcher: IgnoreMatcher, excluded: dict[str, Exclusion]) -> list[str]:
    """Every path under `root` without following links; excluded directories are skipped
    whole (and reported once) unless an anchored `!pattern` reaches inside."""
    names: list[str] = []
    for directory, subdirectories, filenames in os.walk(root, followlinks=False):
        base = Path(directory).relative_to(root).as_posix()
        prefix = "" if base == "." else base + "/"
        kept = []
        for sub in subdirectories:
            name = prefix + sub
            if (root / name).is_symlink():
                names.append(name)  # decided (and refused or not) like a file
            elif matcher.prunable(name):
                why = matcher.exclusion(name, True)
                assert why is not None
                excluded.setdefault(why.path, why)
            else:
                kept.append(sub)
        subdirectories[:] = kept
        names.extend(prefix + f for f in filenames)
    return names


def _bundle_file(root: Path, name: str, path: Path) -> BundleFile:
    target = path.resolve()
    if not target.is_relative_to(root):
        shown = os.readlink(path) if path.is_symlink() else str(target)
        raise ConfigurationError(
            f"{name} is a symlink to {shown}, outside the project {root}: a bundle never "
            f"follows a link out of the project. Exclude it (add the line `/{name}` to "
            f"{IGNORE_FILE}) or copy the file into the project")
    if not path.is_symlink():
        return BundleFile(name=name, size=path.stat().st_size, source=path)
    if not target.exists():
        raise ConfigurationError(
            f"{name} is a symlink to {os.readlink(path)}, which does not exist: remove it or "
            f"exclude it (add the line `/{name}` to {IGNORE_FILE})")
    if target.is_dir():
        raise ConfigurationError(
            f"{name} is a symlink to the directory {target.relative_to(root)}: bundles pack "
            f"regular files only. Exclude it (add the line `/{name}` to {IGNORE_FILE}) or "
            "replace it with the directory itself")
    return BundleFile(name=name, size=target.stat().st_size, source=target,
                      link_target=target.relative_to(root).as_posix())


def _read(file: BundleFile) -> bytes:
    # O_NOFOLLOW: a file swapped for a symlink since it was planned is not followed out.
    fd = os.open(file.source, _READ_FLAGS)
    with os.fdopen(fd, "rb") as handle:
        return handle.read()


def pack(plan: BundlePlan) -> tuple[bytes, str, int]:
    """(zip bytes, sha256, file count) of a plan: regular files only, fixed timestamps and
    modes, so the same files give the same hash."""
    if not plan.files:
        raise ConfigurationError(f"{plan.root} has no files to bundle (all ignored?)")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in plan.files:
            info = zipfile.ZipInfo(file.name, date_time=_EPOCH)
            info.external_attr = 0o100644 << 16  # a regular file, never a link
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, _read(file))
    data = buffer.getvalue()
    if len(data) > MAX_BUNDLE_BYTES:
        raise ConfigurationError(
            f"the bundle is {len(data) // 1_000_000} MB, over the {MAX_BUNDLE_BYTES // 1_000_000}"
            f" MB limit: exclude data and build output in {IGNORE_FILE}")
    return data, hashlib.sha256(data).hexdigest(), len(plan.files)


def project_files(root: Path) -> list[str]:
    """Files a bundle of `root` holds, relative, sorted."""
    return [f.name for f in plan_bundle(root).files]


def build_bundle(root: Path) -> tuple[bytes, str, int]:
    """(zip bytes, sha256, file count) of the project at `root`."""
    return pack(plan_bundle(root))


def upload_planned(client: SluiceClient, plan: BundlePlan, *,
                   requirements: str | None = None) -> CodeSource:
    """Pack a plan and upload it unless the control plane has it already. The upload carries
    the headers the control plane pinned (size and checksum in AWS)."""
    data, digest, _ = pack(plan)
    location = client.request_bundle_upload(BundleUploadRequest(sha256=digest, size=len(data)))
    if not location.exists:
        if location.upload_url is None:
            raise ConfigurationError("the control plane gave no upload URL for the bundle")
        client.put_bundle(location.upload_url, data, headers=location.upload_headers)
    return CodeSource(kind=SourceKind.BUNDLE, bundle_sha256=digest, requirements=requirements)


def upload_bundle(client: SluiceClient, root: Path, *, requirements: str | None = None
                  ) -> CodeSource:
    """Zip `root`, upload it unless the control plane has it already, return the source."""
    return upload_planned(client, plan_bundle(Path(root)), requirements=requirements)
