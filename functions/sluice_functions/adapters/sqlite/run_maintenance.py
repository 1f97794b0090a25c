"""The operator's look-ups and deletions of the SQLite run store: find a run by what a user
typed (`find_flow_runs`), delete a finished run (`delete_flow_run`) and a pool's record
(`delete_pool`). A mixin of `SqliteRunStore`, kept apart so that module stays readable."""

from __future__ import annotations

import json

from sluice.exceptions import NotFound
from sluice.models import FlowRun

from ...ports import MIN_ID_PREFIX_CHARS, MIN_ID_SUFFIX_CHARS
from ..records import readable
from .database import SqliteDatabase
from .store_sql import check_version


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _prefix_upper_bound(prefix: str) -> str:
    """The smallest string above every string starting with `prefix` (for `id < ?`)."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


class SqliteRunMaintenance:
    """`RunStore.find_flow_runs`, `delete_flow_run` and `delete_pool` on the store's file."""

    _db: SqliteDatabase

    def find_flow_runs(self, ref: str, *, limit: int) -> list[FlowRun]:
        """Id prefixes use the primary key's index (`id >= ? AND id < ?`). Suffixes and names
        scan the runs newest first and stop at `limit` matches: a run that matches nothing
        reads every row, which a local server (thousands of runs) does in milliseconds."""
        if not ref:
            return []
        id_ref = ref.lower()
        found: dict[str, tuple[int, FlowRun]] = {}
        with self._db.read() as conn:
            if len(id_ref) >= MIN_ID_PREFIX_CHARS:
                rows = conn.execute(
                    "SELECT id, scheduled_us, doc FROM flow_runs WHERE id >= ? AND id < ?"
                    " ORDER BY scheduled_us DESC, id DESC LIMIT ?",
                    (id_ref, _prefix_upper_bound(id_ref), limit)).fetchall()
                self._collect(rows, found)
            clauses, params = ["json_extract(doc, '$.name') = ?"], [ref]
            if len(id_ref) >= MIN_ID_SUFFIX_CHARS:
                clauses.append("id LIKE ? ESCAPE '\\'")
                params.append(f"%{_escape_like(id_ref)}")
            # `instr` on the name as the JSON holds it first: a cheap test that skips the JSON
            # parse of most rows.
            rows = conn.execute(
                "SELECT id, scheduled_us, doc FROM flow_runs"
                f" WHERE (json_valid(doc) AND instr(doc, ?) > 0 AND {clauses[0]})"
                f"{' OR ' + clauses[1] if len(clauses) > 1 else ''}"
                " ORDER BY scheduled_us DESC, id DESC LIMIT ?",
                (json.dumps(ref, ensure_ascii=False)[1:-1], *params, limit)).fetchall()
            self._collect(rows, found)
        newest_first = sorted(found.values(), key=lambda pair: (pair[0], pair[1].id),
                              reverse=True)
        return [run for _, run in newest_first[:limit]]

    @staticmethod
    def _collect(rows: list, found: dict[str, tuple[int, FlowRun]]) -> None:
        runs = readable(rows, lambda row: FlowRun.model_validate_json(row["doc"]),
                        kind="flow run", ref=lambda row: row["id"])
        by_id = {row["id"]: row["scheduled_us"] for row in rows}
        for run in runs:
            found[run.id] = (by_id[run.id], run)

    def delete_flow_run(self, run: FlowRun) -> None:
        """One transaction: the run, its history (transition ids included) and its task runs.
        Its idempotency key is a column of the run's row and goes with it. Logs live in
        another file (`SqliteLogSink.delete`)."""
        with self._db.write() as conn:
            check_version(conn, run)
            for table, column in (("flow_run_states", "flow_run_id"),
                                  ("task_runs", "flow_run_id"), ("flow_runs", "id")):
                conn.execute(f"DELETE FROM {table} WHERE {column} = ?", (run.id,))

    def delete_pool(self, name: str) -> None:
        with self._db.write() as conn:
            deleted = conn.execute("DELETE FROM pools WHERE name = ?", (name,))
            if deleted.rowcount == 0:
                raise NotFound(f"pool {name!r} not found", details={"pool": name})
            conn.execute("DELETE FROM workers WHERE pool = ?", (name,))
