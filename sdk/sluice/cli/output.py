"""How the CLI prints: rich tables for people, `--json` for scripts, errors on stderr."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..models.names import defanged



def _piped_width() -> int:
    """Width of output that is not a terminal: COLUMNS when set (`COLUMNS=80 sluice ... | less`
    renders as an 80-column terminal would), else 200 so long lines stay whole in pipes
    (`--json` is the format for scripts)."""
    columns = os.environ.get("COLUMNS", "").strip()
    return int(columns) if columns.isdigit() and int(columns) > 0 else 200


console = Console(width=None if sys.stdout.isatty() else _piped_width())
errors = Console(stderr=True, width=None if sys.stderr.isatty() else _piped_width())

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


#: How many characters of an id the tables show.
SHORT_ID_CHARS = 8


def short_id(full_id: str | None) -> str:
    """The id as tables show it: its last 8 characters. Ids start with a timestamp, so runs
    created together share their first characters and differ at the end; every command that
    takes a run id accepts this end (`sluice.cli.refs`)."""
    return "-" if not full_id else full_id[-SHORT_ID_CHARS:]


def state_text(state: Any, reason: str | None = None) -> Text:
    """A state's name in its colour, optionally followed by a dim reason ("Late: no worker…")."""
    if state is None:
        return Text("-")
    shown = Text(defanged(state.name), style=STATE_STYLES.get(state.type.value, ""))
    if reason:
        shown.append(f": {defanged(reason)}", style="dim")
    return shown


def first_words(message: str | None, words: int = 6) -> str:
    """The start of a message for a table cell: its first line's first few words."""
    if not message:
        return ""
    head = message.strip().splitlines()[0] if message.strip() else ""
    parts = head.split()
    return " ".join(parts[:words]) + (" …" if len(parts) > words else "")


def ago(value: datetime | None, now: datetime | None = None) -> str:
    """A time relative to now: "12 s ago", "3 min ago", "in 30 s", "in 2 h"; a date when it is
    more than two weeks away."""
    if value is None:
        return "-"
    now = now or datetime.now(timezone.utc)
    seconds = (now - value).total_seconds()
    span = abs(seconds)
    if span >= 14 * 86400:
        return value.astimezone().strftime("%Y-%m-%d")
    if span < 60:
        amount = f"{int(span)} s"
    elif span < 3600:
        amount = f"{int(span // 60)} min"
    elif span < 86400:
        amount = f"{int(span // 3600)} h"
    else:
        amount = f"{int(span // 86400)} d"
    return f"{amount} ago" if seconds >= 0 else f"in {amount}"


def exact(value: datetime | None, zone: bool = True) -> str:
    """A time to the second in the local zone, e.g. "2026-12-04 19:20:36 CET" (without the
    zone's name: for rows under a heading that names it)."""
    if value is None:
        return "-"
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S" + (" %Z" if zone else "")).strip()


def exact_and_ago(value: datetime | None) -> str:
    """`exact` and `ago` together, e.g. "2026-12-04 19:20:36 UTC (2 min ago)"."""
    return "-" if value is None else f"{exact(value)} ({ago(value)})"


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


ColumnKind = Literal["fixed", "name", "text"]
#: Narrowest width a squeezed column of each kind is given (its header's if longer).
_LEAST_WIDTH = {"name": 16, "text": 24}


@dataclass(frozen=True)
class Col:
    """One column of a `listing`.

    kind: "fixed" for ids, times, states, counts: never wrapped nor cut (when the terminal is
    too narrow the listing drops whole columns instead); "name" for names: one line, cut with
    an ellipsis when squeezed (`--json` has them whole); "text" for messages: wrapped between
    words. drop: 0 keeps the column at every width; columns with a higher number are dropped
    first when the fixed and the squeezed columns do not fit. least: the narrowest width a
    name or text column is squeezed to."""

    header: str
    kind: ColumnKind = "fixed"
    drop: int = 0
    least: int | None = None
    justify: Literal["left", "right"] = "left"


def _as_text(cell: Any) -> Text:
    # Plain strings are data (names, messages), never markup: a "[" in a run name is shown.
    if isinstance(cell, Text):
        return cell
    return Text(defanged("-" if cell is None else str(cell)))


def _text_width(text: Text) -> int:
    return max((cell_len(line) for line in text.plain.split("\n")), default=0)


def _table_overhead(columns: int) -> int:
    # The default box: a border at each edge and between columns, one space of padding each
    # side of every cell.
    return 3 * columns + 1 if columns else 0


def listing(title: str | None, columns: Sequence[Col], rows: Iterable[Sequence[Any]],
            *, width: int | None = None) -> Table:
    """A table that fits `width` (the console's) without wrapping an id, a time or a word:
    fixed columns keep their full width; droppable columns go (highest `drop` first) while the
    others do not fit with their names whole; then name and text columns are squeezed, down to
    their `least` width. Cells are plain strings (escaped, never markup) or rich `Text`."""
    width = width or console.width
    cells = [[_as_text(cell) for cell in row] for row in rows]
    natural = [max([cell_len(col.header)] + [_text_width(row[i]) for row in cells])
               for i, col in enumerate(columns)]
    least = [natural[i] if col.kind == "fixed" else
             min(natural[i], max(cell_len(col.header), col.least or _LEAST_WIDTH[col.kind]))
             for i, col in enumerate(columns)]
    # Low-value columns go before a name is cut: drop while the names and the fixed columns do
    # not fit whole (text columns wrap between words, so they count at their least width).
    wanted = [least[i] if col.kind == "text" else natural[i] for i, col in enumerate(columns)]
    kept = list(range(len(columns)))
    while sum(wanted[i] for i in kept) + _table_overhead(len(kept)) > width:
        droppable = [i for i in kept if columns[i].drop > 0]
        if not droppable:
            break
        kept.remove(max(droppable, key=lambda i: (columns[i].drop, i)))
    widths = {i: natural[i] for i in kept}
    excess = sum(widths.values()) + _table_overhead(len(kept)) - width
    while excess > 0:  # take from the widest squeezable column first
        squeezable = [i for i in kept if widths[i] > least[i]]
        if not squeezable:
            break
        widest = max(squeezable, key=lambda i: widths[i])
        widths[widest] -= 1
        excess -= 1
    t = Table(title=None if title is None else defanged(title), title_justify="left",
              header_style="bold")
    for i in kept:
        col = columns[i]
        t.add_column(col.header, width=widths[i], justify=col.justify,
                     no_wrap=col.kind != "text",
                     overflow="fold" if col.kind == "text" else "ellipsis")
    for row in cells:
        t.add_row(*(row[i] for i in kept))
    return t
