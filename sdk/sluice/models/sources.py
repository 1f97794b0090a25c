"""Where a deployment's code comes from, checked where it enters: the git repository is a URL
(never an option for git), the git ref a ref, and every path inside the project stays inside it.

A worker runs `git clone <repository>` and `git checkout <ref>`, joins `subdirectory` and
`requirements` to the code's directory and imports the entrypoint's file from there. So:

* `repository` is `https://`, `ssh://`, `file://` (tests, one host) or scp-like
  `user@host:path`; nothing that starts with `-` (git would read `--upload-pack=...` as an
  option and run it), no `<transport>::<address>` (git's remote helpers, e.g. `ext::` runs a
  command), no host starting with `-` (`ssh://-oProxyCommand=...`).
* `ref` is a branch, tag or commit: letters, digits and `. _ / @ + -`, not starting with `-`,
  and none of the sequences `git check-ref-format` refuses (`..`, `@{`, `//`).
* `subdirectory`, `requirements` and the entrypoint's file are relative paths with no `..`
  segment: they cannot name a file outside the project (`/etc/...`, `../../home/...`).

Stored deployments are read as they were written (`Deployment.source` is not checked); the
worker still refuses what it cannot run safely.
"""

from __future__ import annotations

import re
import string
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from .names import check_printable, escaped

if TYPE_CHECKING:
    from .deployments import CodeSource

#: Longest repository URL, ref and project-relative path taken.
MAX_URL_CHARS = 2048
MAX_REF_CHARS = 256
MAX_PATH_CHARS = 1024
#: The URL schemes a git repository may use (plain `http://` and `git://` are unauthenticated
#: and unencrypted: anyone on the path could swap the code a worker runs).
REPOSITORY_SCHEMES = ("https", "ssh", "file")
_SCP_LIKE = re.compile(r"^(?P<user>[A-Za-z0-9._~-]+)@(?P<host>[A-Za-z0-9.-]+):(?P<path>[^:].*)$")
_REF_CHARS = frozenset(string.ascii_letters + string.digits + "._/@+-")
_REPOSITORY_FORMS = ("https://host/owner/repo.git, ssh://git@host/owner/repo.git, "
                     "git@host:owner/repo.git or file:///path/to/repo")


def check_repository(url: str, field: str = "source.repository") -> str:
    """`url` if it is a git repository URL a worker may clone; else `ValueError`."""
    shown = f"{field} {escaped(url)}"
    fix = f"give a repository URL such as {_REPOSITORY_FORMS}"
    if len(url) > MAX_URL_CHARS:
        raise ValueError(f"{field} is {len(url)} characters long; use at most {MAX_URL_CHARS}")
    if url.startswith("-"):
        raise ValueError(f"{shown} starts with '-', which git reads as an option; {fix}")
    if any(ch.isspace() for ch in url):
        raise ValueError(f"{shown} contains whitespace; {fix}")
    check_printable(url, field)
    if "::" in url:
        raise ValueError(f"{shown} uses a git remote helper (<transport>::<address>), which can "
                         f"run commands; {fix}")
    scp = _SCP_LIKE.match(url) if "://" not in url else None
    if scp is not None:
        if scp["host"].startswith("-") or scp["user"].startswith("-"):
            raise ValueError(f"{shown} has a user or host starting with '-'; {fix}")
        return url
    parts = urlsplit(url)
    if parts.scheme not in REPOSITORY_SCHEMES:
        raise ValueError(f"{shown} is not a URL of an accepted kind "
                         f"({', '.join(REPOSITORY_SCHEMES)} or user@host:path); {fix}")
    if parts.scheme == "file":
        if not parts.path.startswith("/"):
            raise ValueError(f"{shown} must be file:///absolute/path; {fix}")
        return url
    if not parts.hostname or parts.netloc.rpartition("@")[2].startswith("-"):
        raise ValueError(f"{shown} has no host, or one starting with '-'; {fix}")
    return url


def check_git_ref(ref: str, field: str = "source.ref") -> str:
    """`ref` if it is a branch, tag or commit name git cannot mistake for an option."""
    shown = f"{field} {escaped(ref)}"
    fix = "give a branch, tag or commit, e.g. 'main', 'v1.2.0' or a commit sha"
    if not ref or len(ref) > MAX_REF_CHARS:
        raise ValueError(f"{field} must be 1 to {MAX_REF_CHARS} characters; {fix}")
    bad = next((ch for ch in ref if ch not in _REF_CHARS), None)
    if bad is not None:
        raise ValueError(f"{shown} contains {escaped(bad)}; use letters, digits and "
                         f". _ / @ + -; {fix}")
    if ref.startswith(("-", ".", "/")) or ref.endswith(("/", ".", ".lock")):
        raise ValueError(f"{shown} must not start with '-', '.' or '/', nor end with '/', '.' "
                         f"or '.lock'; {fix}")
    if any(sequence in ref for sequence in ("..", "@{", "//", "/.")):
        raise ValueError(f"{shown} contains '..', '@{{', '//' or '/.' (not a git ref); {fix}")
    return ref


def check_relative_path(path: str, field: str, example: str = "'src/flows'") -> str:
    """`path` if it stays inside the project: relative, no `..` segment, `/`-separated."""
    shown = f"{field} {escaped(path)}"
    fix = f"give a path relative to the project root, e.g. {example}"
    if not path or len(path) > MAX_PATH_CHARS:
        raise ValueError(f"{field} must be 1 to {MAX_PATH_CHARS} characters; {fix}")
    check_printable(path, field)
    if "\\" in path:
        raise ValueError(f"{shown} contains '\\'; separate directories with '/'; {fix}")
    if path.startswith(("/", "~")) or re.match(r"^[A-Za-z]:", path):
        raise ValueError(f"{shown} is absolute; {fix}")
    if ".." in path.split("/"):
        raise ValueError(f"{shown} has a '..' segment, which leaves the project; {fix}")
    return path


def check_entrypoint(entrypoint: str, field: str = "entrypoint") -> str:
    """`entrypoint` if it is `path/to/file.py:flow_function` (relative, inside the project) or
    `package.module:flow_function`."""
    example = "'flows/etl.py:nightly' or 'my_package.flows:nightly'"
    location, sep, name = entrypoint.rpartition(":")
    check_printable(entrypoint, field)
    if not sep or not location or not name.isidentifier():
        raise ValueError(f"{field} {escaped(entrypoint)} must look like {example}")
    if location.endswith(".py"):
        check_relative_path(location, field, example)
    elif not all(part.isidentifier() for part in location.split(".")):
        raise ValueError(f"{field} {escaped(entrypoint)}: {escaped(location)} is neither a .py "
                         f"file nor a dotted module name; it must look like {example}")
    return entrypoint


def check_code_source(source: CodeSource) -> CodeSource:
    """`source` if every field a worker acts on is safe to act on (see the module docstring)."""
    from .deployments import SHA256_PATTERN

    if source.repository is not None:
        check_repository(source.repository)
    if source.ref is not None:
        check_git_ref(source.ref)
    for field in ("subdirectory", "requirements", "bundle_key"):
        value = getattr(source, field)
        if value is not None:
            check_relative_path(value, f"source.{field}",
                                "'requirements.txt'" if field == "requirements" else "'src'")
    if source.path is not None:
        check_printable(source.path, "source.path")
    if source.bundle_sha256 is not None and not re.match(SHA256_PATTERN, source.bundle_sha256):
        raise ValueError(f"source.bundle_sha256 {escaped(source.bundle_sha256)} must be the "
                         "64 lowercase hex digits of the bundle's SHA-256 (sluice deploy "
                         "--source bundle computes it)")
    return source
