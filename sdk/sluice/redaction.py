"""Masking secret values before anything leaves the flow's process.

Every value read through `sluice.secret()` and every `SecretStr`/`SecretBytes` parameter of a
flow run is registered here (for the life of the process). The reporter masks registered values
in log lines, flow-run and task-run state messages and details, and the parameters of runs it
creates; the run loggers' console copy and a worker run's stderr are masked too. So a flow that
prints, logs or raises a secret shows `**********` wherever the line or state ends up.

What cannot be masked: bytes written below Python (a C library or a child process writing to
file descriptor 1/2 directly), a value split across two `write()` calls, a transformed value
(base64, reversed...), and values shorter than `MIN_SECRET_CHARS` (they would mask ordinary text;
a warning says so).
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

from .models.secrets import SECRET_MASK

#: Shorter values are not masked: "1" or "abc" would blank out ordinary text.
MIN_SECRET_CHARS = 4
_log = logging.getLogger("sluice.secrets")
_lock = threading.Lock()
_values: set[str] = set()
#: None while nothing is registered: every check is then one attribute read.
_pattern: re.Pattern[str] | None = None


def register(value: Any) -> None:
    """Mask `value` (a str, bytes, or pydantic SecretStr/SecretBytes) from now on."""
    global _pattern
    if hasattr(value, "get_secret_value"):
        value = value.get_secret_value()
    if isinstance(value, bytes):
        try:
            value = value.decode()
        except UnicodeDecodeError:
            return
    if not isinstance(value, str) or value in _values:
        return
    if len(value) < MIN_SECRET_CHARS:
        if value:
            _log.warning("a secret of %d characters is too short to be masked in logs "
                         "(at least %d)", len(value), MIN_SECRET_CHARS)
        return
    with _lock:
        _values.add(value)
        # Longest first, so a secret that contains another is masked whole.
        ordered = sorted(_values, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(v) for v in ordered))


def active() -> bool:
    return _pattern is not None


def redact(text: str) -> str:
    pattern = _pattern
    if pattern is None or not isinstance(text, str) or not text:
        return text
    return pattern.sub(SECRET_MASK, text)


def redact_value(value: Any) -> Any:
    """A copy of a JSON-like value with registered secrets masked in every string."""
    if _pattern is None:
        return value
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact(k) if isinstance(k, str) else k: redact_value(v)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_value(v) for v in value)
    return value


def redact_state(state: Any) -> Any:
    """The state itself when it shows no secret, else a copy with message and details masked
    (the copy keeps the engine's in-process result)."""
    if _pattern is None:
        return state
    message = redact(state.message) if state.message else state.message
    details = redact_value(state.details) if state.details else state.details
    if message == state.message and details == state.details:
        return state
    return state.model_copy(update={"message": message, "details": details})


def redact_task_run(task_run: Any) -> Any:
    if _pattern is None:
        return task_run
    state = redact_state(task_run.state)
    return task_run if state is task_run.state else task_run.model_copy(update={"state": state})


def register_secrets_in(value: Any, depth: int = 0) -> None:
    """Register every SecretStr/SecretBytes found in `value` (parameters: dicts, lists, pydantic
    models, a few levels deep)."""
    if depth > 4 or value is None or isinstance(value, (str, bytes, int, float, bool)):
        return
    if hasattr(value, "get_secret_value"):
        register(value)
    elif isinstance(value, dict):
        for item in value.values():
            register_secrets_in(item, depth + 1)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            register_secrets_in(item, depth + 1)
    elif hasattr(value, "__pydantic_fields__"):
        for name in value.__pydantic_fields__:
            register_secrets_in(getattr(value, name, None), depth + 1)


def _forget_all() -> None:
    """Tests only: start again with nothing registered."""
    global _pattern
    with _lock:
        _values.clear()
        _pattern = None
