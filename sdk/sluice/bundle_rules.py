"""What a code bundle leaves out: default exclusions (secret-looking files, version-control
metadata, virtualenvs, caches) and the project's `.sluiceignore` / `.gitignore` patterns.

Patterns follow `.gitignore`: `*`, `?` and `[...]` match within one path segment, `**` spans
segments, a trailing `/` matches directories only, a pattern with a `/` (other than a trailing
one) is anchored at the project root, and `!pattern` re-includes what an earlier pattern
excluded. The last pattern that matches a path decides. As in git, a file inside an excluded
directory stays excluded whatever matches the file itself, except that an explicit anchored
`!dir/file` re-includes it (an unanchored `!*.key` never reaches into `.venv/`); `!dir/`
re-includes the directory itself.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path

IGNORE_FILE = ".sluiceignore"
#: A directory holding this file is a virtualenv, whatever its name.
VENV_MARKER = "pyvenv.cfg"

SECRET = "secret-looking"
#: Files that commonly hold credentials or private keys: never shipped unless re-included.
DEFAULT_SECRET_PATTERNS = (
    ".env*", "*.pem", "*.key", "*.p12", "*.pfx", "*.jks", "*.keystore",
    "id_rsa*", "id_dsa*", "id_ecdsa*", "id_ed25519*",
    "credentials*", ".netrc", ".pypirc", ".npmrc", ".git-credentials",
    ".aws/", ".ssh/", ".gnupg/",
)
#: Files a flow never needs and that can be large (and can hold history or tokens, like .git).
DEFAULT_NOISE_PATTERNS = {
    "version-control metadata": (".git", ".hg/", ".svn/"),
    "virtualenv": (".venv/", "venv/"),
    "cache": ("__pycache__/", "*.pyc", "*.pyo", ".pytest_cache/", ".mypy_cache/",
              ".ruff_cache/", ".hypothesis/", ".tox/", ".nox/", ".ipynb_checkpoints/",
              "node_modules/", ".DS_Store"),
}


@dataclass(frozen=True)
class IgnoreRule:
    """One pattern line, parsed."""

    pattern: str
    #: Where it comes from: "default", ".gitignore" or ".sluiceignore".
    origin: str
    #: Why a default excludes (e.g. "secret-looking"); None for the user's own patterns.
    kind: str | None = None
    negate: bool = False
    directory_only: bool = False
    anchored: bool = False
    segments: tuple[str, ...] = ()
    #: Defaults match regardless of case (`ID_RSA`, `Server.PEM` are keys too).
    ignore_case: bool = False

    @classmethod
    def parse(cls, line: str, origin: str, kind: str | None = None) -> IgnoreRule | None:
        """The rule of one line, or None for a blank line or a comment."""
        text = line.strip()
        if not text or text.startswith("#"):
            return None
        negate = text.startswith("!")
        body = text[1:] if negate else text
        directory_only = body.endswith("/")
        body = body.strip("/") if body.startswith("/") else body.rstrip("/")
        anchored = text.lstrip("!").startswith("/") or "/" in body
        if not body:
            return None
        return cls(pattern=text, origin=origin, kind=kind, negate=negate,
                   directory_only=directory_only, anchored=anchored,
                   segments=tuple(body.lower().split("/") if origin == "default"
                                  else body.split("/")),
                   ignore_case=origin == "default")

    def matches(self, path: str, is_dir: bool) -> bool:
        """Whether the rule names `path` (relative, `/`-separated) itself."""
        if self.directory_only and not is_dir:
            return False
        subject = path.lower() if self.ignore_case else path
        if self.anchored:
            return _match_segments(self.segments, tuple(subject.split("/")))
        return fnmatch.fnmatchcase(subject.rpartition("/")[2], self.segments[0])

    def may_match_beneath(self, directory: str) -> bool:
        """Whether some path strictly inside `directory` could match (anchored rules only)."""
        subject = directory.lower() if self.ignore_case else directory
        return self.anchored and _prefix_match(self.segments, tuple(subject.split("/")))


def _match_segments(pattern: tuple[str, ...], parts: tuple[str, ...]) -> bool:
    if not pattern:
        return not parts
    if pattern[0] == "**":
        return any(_match_segments(pattern[1:], parts[i:]) for i in range(len(parts) + 1))
    return bool(parts) and fnmatch.fnmatchcase(parts[0], pattern[0]) and \
        _match_segments(pattern[1:], parts[1:])


def _prefix_match(pattern: tuple[str, ...], parts: tuple[str, ...]) -> bool:
    if not parts:
        return bool(pattern)  # something of the pattern is left for a deeper path
    if not pattern:
        return False
    if pattern[0] == "**":
        return True
    return fnmatch.fnmatchcase(parts[0], pattern[0]) and _prefix_match(pattern[1:], parts[1:])


def default_rules() -> list[IgnoreRule]:
    """The built-in exclusions, secret-looking files first."""
    rules = [IgnoreRule.parse(p, "default", SECRET) for p in DEFAULT_SECRET_PATTERNS]
    rules += [IgnoreRule.parse(p, "default", kind) for kind, patterns in
              DEFAULT_NOISE_PATTERNS.items() for p in patterns]
    return [r for r in rules if r is not None]


def file_rules(path: Path, origin: str) -> list[IgnoreRule]:
    """The rules of an ignore file (none if it does not exist)."""
    if not path.is_file():
        return []
    rules = (IgnoreRule.parse(line, origin) for line in path.read_text().splitlines())
    return [r for r in rules if r is not None]


@dataclass(frozen=True)
class Exclusion:
    """A file or directory left out of a bundle, and why."""

    #: Relative path; a directory ends with `/` (everything in it is left out).
    path: str
    rule: IgnoreRule

    @property
    def by_default(self) -> bool:
        return self.rule.origin == "default"

    @property
    def secret(self) -> bool:
        return self.rule.kind == SECRET

    @property
    def reason(self) -> str:
        if self.by_default:
            return f"{self.rule.kind} (default `{self.rule.pattern}`)"
        return f"{self.rule.origin} `{self.rule.pattern}`"


#: The pseudo-rule for a directory that holds `pyvenv.cfg` (a virtualenv of any name).
_VENV_RULE = IgnoreRule(pattern=f"<dir with {VENV_MARKER}>", origin="default",
                        kind="virtualenv")


@dataclass
class IgnoreMatcher:
    """Decides, path by path, what a bundle of `root` leaves out (decisions are cached)."""

    root: Path
    rules: list[IgnoreRule]
    _decided: dict[tuple[str, bool], Exclusion | None] = field(default_factory=dict)

    @classmethod
    def for_project(cls, root: Path, *, with_gitignore: bool) -> IgnoreMatcher:
        """Defaults, then `.gitignore` (when git does not apply it), then `.sluiceignore`:
        a `!pattern` in `.sluiceignore` can re-include what a default left out."""
        rules = default_rules()
        if with_gitignore:
            rules += file_rules(root / ".gitignore", ".gitignore")
        rules += file_rules(root / IGNORE_FILE, IGNORE_FILE)
        return cls(root=root, rules=rules)

    def exclusion(self, path: str, is_dir: bool) -> Exclusion | None:
        """Why `path` is left out, or None when it is packed."""
        key = (path, is_dir)
        if key not in self._decided:
            self._decided[key] = self._decide(path, is_dir)
        return self._decided[key]

    def _decide(self, path: str, is_dir: bool) -> Exclusion | None:
        parent = path.rpartition("/")[0]
        inherited = self.exclusion(parent, True) if parent else None
        last: IgnoreRule | None = None
        if is_dir and (self.root / path / VENV_MARKER).is_file():
            last = _VENV_RULE
        for rule in self.rules:
            if rule.matches(path, is_dir):
                last = rule
        if inherited is not None:
            # Only an explicit anchored `!dir/file` gets a path out of an excluded directory.
            rescued = last is not None and last.negate and last.anchored
            return None if rescued else inherited
        if last is None or last.negate:
            return None
        return Exclusion(path=path + "/" if is_dir else path, rule=last)

    def prunable(self, directory: str) -> bool:
        """Whether a walk may skip `directory` whole: it is excluded and no anchored
        `!pattern` could re-include something inside it."""
        return self.exclusion(directory, True) is not None and not any(
            r.negate and r.may_match_beneath(directory) for r in self.rules)
