"""Sections of a generated document that another benchmark owns: kept between two markers, so
that regenerating the document (bench/cost_model.py rewrites docs/cost.md) keeps them and the
owner (bench/scale.py) can replace its own."""

from __future__ import annotations

import re


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}: begin -->", f"<!-- {name}: end -->"


def extract(text: str, name: str) -> str | None:
    """The section `name` of `text`, markers included, or None."""
    begin, end = markers(name)
    found = re.search(re.escape(begin) + r".*?" + re.escape(end), text, flags=re.S)
    return found.group(0) if found else None


def splice(text: str, name: str, section: str, *, before: str) -> str:
    """`text` with section `name` replaced by `section` (markers included), or, where it has
    none yet, inserted before the line `before` (at the end when that line is absent)."""
    old = extract(text, name)
    if old is not None:
        return text.replace(old, section)
    at = text.find("\n" + before + "\n")
    if at < 0:
        return text.rstrip("\n") + "\n\n" + section + "\n"
    return text[: at + 1] + section + "\n\n" + text[at + 1:]
