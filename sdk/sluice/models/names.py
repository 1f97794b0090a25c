"""User-chosen names: one rule set for every name a user picks, checked where names enter.

Names are shown in terminals and the console, become parts of URLs, store keys, queue names
and log stream names, and are compared by people reading them. So they take a conservative
ASCII charset: no control characters (an ESC sequence in a name would drive the terminal of
whoever lists it), no bidirectional or invisible formatting characters (U+202E makes
`gpj.exe` read `exe.jpg`), no look-alike letters from other scripts (`раypal`), no Unicode
normalisation twins (`é` composed or not), no `/` (deployments are addressed as
`flow/name`), and never `.` or `..` (path segments).

| kind                                | characters                                | longest |
|-------------------------------------|-------------------------------------------|---------|
| flow, deployment, task, run, worker, schedule id | `A-Z a-z 0-9`, space, `- _ .` | 256 |
| ids a client chooses (flow run, backfill) | `A-Z a-z 0-9 - _ .`          | 64      |
| pool (becomes an SQS queue name)    | `a-z 0-9 -`, starting with a letter/digit, not ending `-dlq` | 40 |
| tag                                 | `A-Z a-z 0-9`, space, `- _ . : / = @ +`   | 128 |

Names may not start with `.` or a space, nor end with a space. Free text (descriptions) is not
a name and keeps any character.

The rules apply where names enter: request models (`DeploymentCreate`, `PoolCreate`, ...), the
`@flow`/`@task` decorators, the CLI (which builds those models) and the CDK construct. Records
stored before a rule existed are still read (the read models, `Deployment`, `Pool`, `FlowRun`,
take any string), and API paths that look a record up (`LookupName`, `LookupPoolName`) accept
any name the earlier rules allowed except invisible and control characters: such a record is
reached by its id.
"""

from __future__ import annotations

import string
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

from .bounds import MAX_TAG_CHARS

#: Longest flow, deployment, task, run or worker name (and schedule id).
MAX_NAME_CHARS = 256
#: Longest pool name. Pools become SQS queues `<prefix>-<pool>` and `<prefix>-<pool>-dlq`; SQS
#: allows 80 characters of [A-Za-z0-9_-]
#: (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_CreateQueue.html)
#: and the stack prefix (at most 30) and the suffix need room.
MAX_POOL_NAME_CHARS = 40
#: A pool's dead-letter queue is its queue's name plus this suffix (the same constant as
#: `sluice_functions.config.DEAD_LETTER_SUFFIX`, which may not be imported from here): a pool
#: named `<other>-dlq` would share the queue of pool `<other>`'s dead letters.
DEAD_LETTER_SUFFIX = "-dlq"
#: Pool names as a regular expression (for OpenAPI and code outside Python's reach). The
#: look-ahead refuses names that would map onto another pool's dead-letter queue.
POOL_NAME_PATTERN = r"^(?!.*-dlq$)[a-z0-9][a-z0-9-]{0,39}$"
#: Pool names before the dead-letter rule: pools stored under them can still be looked up.
LEGACY_POOL_NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,39}$"

NameKind = Literal["flow", "deployment", "task", "run", "worker", "schedule", "id", "pool", "tag"]

_WORD = frozenset(string.ascii_letters + string.digits)
_POOL_CHARS = frozenset(string.ascii_lowercase + string.digits + "-")
#: Bidirectional controls: embeddings and overrides, isolates, marks (LRM, RLM, ALM).
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")


@dataclass(frozen=True)
class _Rule:
    label: str
    chars: frozenset[str]
    allowed: str
    example: str
    max_chars: int


_NAME_CHARS = _WORD | frozenset(" -_.")
_NAME_ALLOWED = "letters A-Z a-z, digits, spaces and - _ ."
_RULES: dict[str, _Rule] = {
    kind: _Rule(f"{kind} name", _NAME_CHARS, _NAME_ALLOWED, example, MAX_NAME_CHARS)
    for kind, example in (("flow", "'nightly-etl'"), ("deployment", "'prod'"),
                          ("task", "'load-orders'"), ("run", "'backfill-2024-05'"),
                          ("worker", "'ip-10-0-1-7'"))
}
_RULES["schedule"] = _Rule("schedule id", _NAME_CHARS, _NAME_ALLOWED, "'hourly-berlin'",
                           MAX_NAME_CHARS)
_RULES["id"] = _Rule("id", _WORD | frozenset("-_."), "letters A-Z a-z, digits and - _ .",
                     "'2024-backfill'", MAX_NAME_CHARS)
_RULES["pool"] = _Rule("pool name", _POOL_CHARS, "lowercase letters a-z, digits and -",
                       "'gpu-workers'", MAX_POOL_NAME_CHARS)
_RULES["tag"] = _Rule("tag", _WORD | frozenset(" -_.:/=@+"),
                      "letters A-Z a-z, digits, spaces and - _ . : / = @ +", "'env:prod'",
                      MAX_TAG_CHARS)


def escaped(text: str, limit: int = 80) -> str:
    """`text` quoted with every control, bidi, invisible or non-ASCII character written as an
    escape (`\\x1b`, `\\u202e`): safe to print in a terminal or a log. Long text is cut."""
    shown = "".join(ch if " " <= ch <= "~" else _escape(ch) for ch in text[:limit])
    return f"'{shown}{'...' if len(text) > limit else ''}'"


def defanged(text: str, keep: str = "\n") -> str:
    """`text` with its control, bidirectional and invisible characters (except those in `keep`)
    written as escapes (`\x1b`); letters of every script are kept. For showing stored text
    that may predate the name rules (or be free text) in a terminal."""
    if not any(_is_unsafe(ch) for ch in text):
        return text
    return "".join(_escape(ch) if _is_unsafe(ch) and ch not in keep else ch for ch in text)


def _escape(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 \
        else f"\\U{code:08x}"


def _describe(ch: str) -> str:
    """What kind of character `ch` is, in a few words, with its escape."""
    code = ord(ch)
    if code < 0x20 or 0x7F <= code < 0xA0:
        return f"the control character {_escape(ch)}"
    if ch in _BIDI:
        return f"the bidirectional-text control {_escape(ch)} (it reorders what is displayed)"
    if unicodedata.category(ch) in ("Cf", "Zl", "Zp") or ch in "\u200b\u2060\ufeff":
        return f"the invisible character {_escape(ch)}"
    if code > 0x7E:
        return f"the non-ASCII character {_escape(ch)}"
    return f"the character '{ch}'"


def name_problem(value: str, kind: NameKind) -> str | None:
    """Why `value` is not a valid name of `kind` (a sentence naming the fix), or None."""
    rule = _RULES[kind]
    shown = f"{rule.label} {escaped(value)}"
    if not value:
        return f"{rule.label} must not be empty; for example {rule.example}"
    if len(value) > rule.max_chars:
        return (f"{shown} is {len(value)} characters long; use at most {rule.max_chars}")
    for position, ch in enumerate(value):
        if ch not in rule.chars:
            return (f"{shown} contains {_describe(ch)} at position {position}; use only "
                    f"{rule.allowed}, for example {rule.example}")
    if value[0] in ". " or value[-1] == " ":
        return (f"{shown} must not start with '.' or a space, nor end with a space "
                f"(`.` and `..` are path segments); for example {rule.example}")
    if kind == "pool":
        if value[0] == "-":
            return f"{shown} must start with a letter or a digit; for example {rule.example}"
        if value.endswith(DEAD_LETTER_SUFFIX):
            return (f"{shown} ends with '{DEAD_LETTER_SUFFIX}': its queue would be the "
                    f"dead-letter queue of pool '{value[:-len(DEAD_LETTER_SUFFIX)]}'; choose "
                    f"another name, e.g. '{value[:-len(DEAD_LETTER_SUFFIX)]}-dl'")
    return None


def check_name(value: str, kind: NameKind = "flow") -> str:
    """`value` if it is a valid name of `kind`; else `ValueError` naming the kind, the bad
    character (escaped) and what is allowed."""
    problem = name_problem(value, kind)
    if problem is not None:
        raise ValueError(problem)
    return value


def check_lookup_name(value: str, kind: NameKind = "flow") -> str:
    """`value` if it may name a record to look up: any name the earlier rules allowed, except
    control, bidirectional and invisible characters (a record stored under such a name is
    reached by its id)."""
    for position, ch in enumerate(value):
        if _is_unsafe(ch):
            raise ValueError(f"{_RULES[kind].label} {escaped(value)} contains {_describe(ch)} "
                             f"at position {position}; address the record by its id instead")
    return value


def lookup_validator(kind: NameKind) -> AfterValidator:
    """The validator of a path or query parameter that names a record to look up (see
    `check_lookup_name`), for `Annotated[str, Path(...), lookup_validator("flow")]`."""
    return custom_validator(partial(check_lookup_name, kind=kind))


def check_printable(value: str, what: str = "text") -> str:
    """`value` unless it holds control, bidirectional or invisible characters (for short free
    text that is shown in tables: parameter names, a worker's host and version)."""
    for position, ch in enumerate(value):
        if _is_unsafe(ch):
            raise ValueError(f"{what} {escaped(value)} contains {_describe(ch)} at position "
                             f"{position}; remove it")
    return value


def check_parameter_names(parameters: dict[str, Any]) -> dict[str, Any]:
    """Parameters whose names are printable and at most `MAX_NAME_CHARS` long (a flow's
    parameters are Python identifiers; a `**kwargs` flow takes any other printable key)."""
    for key in parameters:
        if len(key) > MAX_NAME_CHARS:
            raise ValueError(f"parameter name {escaped(key)} is {len(key)} characters long; "
                             f"use at most {MAX_NAME_CHARS}")
        check_printable(key, "parameter name")
    return parameters


def _is_unsafe(ch: str) -> bool:
    code = ord(ch)
    return (code < 0x20 or 0x7F <= code < 0xA0 or ch in _BIDI
            or unicodedata.category(ch) in ("Cf", "Zl", "Zp"))


def custom_validator(check: Callable[[Any], Any]) -> AfterValidator:
    """An AfterValidator whose error message is the check's own sentence (without pydantic's
    "Value error, " prefix), typed `invalid_name` for API clients."""

    def validate(value: Any) -> Any:
        try:
            return check(value)
        except ValueError as exc:
            raise PydanticCustomError("invalid_name", "{reason}", {"reason": str(exc)}) from None

    return AfterValidator(validate)


def _name(kind: NameKind, max_chars: int = MAX_NAME_CHARS, **schema: Any) -> Any:
    # min/max length are checked first so over-long values answer 413 like other fields.
    return Annotated[str, Field(min_length=1, max_length=max_chars, **schema),
                     custom_validator(partial(check_name, kind=kind))]


FlowName = _name("flow")
DeploymentName = _name("deployment")
TaskName = _name("task")
RunName = _name("run")
WorkerName = _name("worker")
ScheduleId = _name("schedule")
#: An id the client chooses (a flow run's, a backfill's): at most 64 characters.
ClientId = _name("id", 64)
PoolName = _name("pool", MAX_POOL_NAME_CHARS, json_schema_extra={"pattern": POOL_NAME_PATTERN})
Tag = _name("tag", MAX_TAG_CHARS)
#: Short free text shown in tables (a worker's host and version).
PrintableText = Annotated[str, custom_validator(check_printable)]
#: Parameters (flow keyword arguments) whose names are printable.
Parameters = Annotated[dict[str, Any], custom_validator(check_parameter_names)]
