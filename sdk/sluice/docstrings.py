"""Parameter descriptions from a docstring (Google, numpy or Sphinx style), for the schema.

    def etl(day: str, limit: int = 10):
        \"\"\"Load one day.

        Args:
            day: The day to load, as YYYY-MM-DD.
            limit (int): At most this many rows.
        \"\"\"
"""

from __future__ import annotations

import inspect
import re
from typing import Any

_GOOGLE_HEADERS = {"args:", "arguments:", "parameters:", "params:", "keyword args:",
                   "keyword arguments:"}
_SECTION = re.compile(r"^[A-Z][A-Za-z ]*:$")  # "Returns:", "Raises:", ...
_GOOGLE_ITEM = re.compile(r"^(\*{0,2}\w+)\s*(\([^)]*\))?\s*:\s*(.*)$")
_NUMPY_ITEM = re.compile(r"^(\*{0,2}\w+)(\s*:.*)?$")
_SPHINX_ITEM = re.compile(r"^:param\s+(?:[^:]*\s)?(\w+)\s*:\s*(.*)$")


def parameter_descriptions(fn: Any) -> dict[str, str]:
    """Parameter name -> description, from `fn`'s docstring ({} when it documents none)."""
    doc = inspect.getdoc(fn)
    if not doc:
        return {}
    lines = doc.splitlines()
    found = _google(lines) or _numpy(lines) or _sphinx(lines)
    return {name.lstrip("*"): " ".join(text.split()) for name, text in found.items() if text}


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _google(lines: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    inside, item_indent, current = False, None, None
    for line in lines:
        stripped = line.strip()
        if not inside:
            inside = stripped.lower() in _GOOGLE_HEADERS
            item_indent, current = None, None
            continue
        if not stripped:
            continue
        if _indent(line) == 0 and _SECTION.match(stripped):
            inside = stripped.lower() in _GOOGLE_HEADERS
            item_indent, current = None, None
            continue
        if _indent(line) == 0:
            inside = False
            continue
        if item_indent is None:
            item_indent = _indent(line)
        if _indent(line) == item_indent:
            match = _GOOGLE_ITEM.match(stripped)
            if match:
                current = match.group(1)
                out[current] = match.group(3)
                continue
        if current is not None and _indent(line) > item_indent:
            out[current] += " " + stripped
    return out


def _numpy(lines: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    current = None
    i = 0
    while i < len(lines):
        if lines[i].strip().lower() in ("parameters", "other parameters") and i + 1 < len(lines) \
                and set(lines[i + 1].strip()) == {"-"}:
            i += 2
            while i < len(lines):
                line = lines[i]
                stripped = line.strip()
                if i + 1 < len(lines) and lines[i + 1].strip() and \
                        set(lines[i + 1].strip()) == {"-"}:
                    break  # the next section's header
                if stripped and _indent(line) == 0:
                    match = _NUMPY_ITEM.match(stripped)
                    current = match.group(1) if match else None
                    if current:
                        out[current] = ""
                elif stripped and current is not None:
                    out[current] = f"{out[current]} {stripped}".strip()
                i += 1
            continue
        i += 1
    return out


def _sphinx(lines: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    current = None
    for line in lines:
        stripped = line.strip()
        match = _SPHINX_ITEM.match(stripped)
        if match:
            current = match.group(1)
            out[current] = match.group(2)
        elif stripped.startswith(":"):
            current = None
        elif stripped and current is not None and _indent(line) > 0:
            out[current] += " " + stripped
    return out
