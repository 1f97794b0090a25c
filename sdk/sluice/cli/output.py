"""How the CLI prints: rich tables for people, `--json` for scripts, errors on stderr."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from typing import Any

from rich.console import Console
from rich.table import Table

from ..models.names import defanged

# Piped output keeps long ids on one line (`--json` is the format for scripts).
console = Console(width=None if sys.stdout.isatty() else 200)
errors = Console(stderr=True, width=None if sys.stderr.isatty() else 200)

STATE_STYLES = {
    "COMPLETED": "green", "FAILED": "red", "CRASHED": "bold red", "CANCELLED": "yellow",
    "CANCELLING": "yellow", "RUNNING": "cyan", "PENDING": "blue", "SCHEDULED": "dim",
    "PAUSED": "magenta",
}


def print_json(data: Any) -> None:
    """Plain JSON on stdout (no colour, no wrapping) for pipes and scripts."""
    if hasattr(data, "model_dump"):
        data = data.model_dump(mode="json")
    elif isinstance(data, list):
        data = [d.model_dump(mode="json") if hasattr(d, "model_dump") else d for d in data]
    print(json.dumps(data, indent=2, default=str))


def styled_state(state: Any) -> str:
    if state is None:
        return "-"
    style = STATE_STYLES.get(state.type.value, "")
    return f"[{style}]{state.name}[/{style}]" if style else state.name


def when(value: datetime | None) -> str:
    if value is None:
        return "-"
    local = value.astimezone()
    age = (datetime.now(timezone.utc) - value).total_seconds()
    if 0 <= age < 86400:
        return local.strftime("%H:%M:%S")
    return local.strftime("%Y-%m-%d %H:%M")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.2f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


class _EscapingTable(Table):
    """A table that writes control, bidi and invisible characters of its cells as escapes
    (`\x1b`): stored names and messages may predate the name rules, and an ESC sequence in a
    cell would otherwise drive the terminal of whoever lists it."""

    def add_row(self, *renderables: Any, **kwargs: Any) -> None:
        super().add_row(*(defanged(cell) if isinstance(cell, str) else cell
                          for cell in renderables), **kwargs)


def table(title: str | None, *columns: str) -> Table:
    t = _EscapingTable(title=None if title is None else defanged(title), title_justify="left",
                       header_style="bold")
    for column in columns:
        t.add_column(column, overflow="fold")
    return t
