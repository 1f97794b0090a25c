"""A flow run's state history inside its own item (schema 3, issue 20).

Before schema 3 every state change was one TransactWriteItems of the run item, a `STATE#<v>`
history item and a `TRANSITION#<id>` guard: three items at twice the write units each. Now the
run item carries its newest history entries (`states`, a list), their size (`states_bytes`) and
the transition ids they applied (`transition_ids`, a string set), so a state change is one
conditional UpdateItem:

* `#version = :expected` is the compare-and-set;
* `NOT contains(transition_ids, :id)` refuses a transition applied before;
* `size(states)` and `states_bytes` keep the item small: a change that would pass
  `INLINE_HISTORY_MAX_ENTRIES` or `INLINE_HISTORY_MAX_BYTES` fails its condition, and the store
  then moves the inline entries out to `STATE#<v>` items (their ids to `TRANSITION#` guards) in
  one transaction with the new run item (`spill_writes`). Long runs with many retries pay that
  every few dozen changes; a short run never does.

History reads merge the inline entries with `STATE#` items (spilled ones, and those written
before schema 3); transition checks look at the set, then at a `TRANSITION#` guard.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sluice.models import FlowRun, State
from sluice.models.states import DEFAULT_STATE_NAMES

from ...config import TABLE_PARTITION_KEY, TABLE_SORT_KEY, TTL_ATTRIBUTE
from ..records import UnreadableRecord
from . import dynamo_items as items
from .dynamo_table import SingleTable

HISTORY = "states"
HISTORY_BYTES = "states_bytes"
TRANSITION_IDS = "transition_ids"
#: Inline history entries at most; the next change moves them to `STATE#` items.
INLINE_HISTORY_MAX_ENTRIES = 24
#: Bytes of inline history entries at most (write units are billed per started KB of the
#: item: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/read-write-operations.html).
INLINE_HISTORY_MAX_BYTES = 3072
Entry = tuple[int, str | None, State]


def entry_text(version: int, state: State, transition_id: str | None) -> str:
    """One inline entry: compact JSON of the version, the state (None fields and a default name
    left out: they read back as their defaults) and the transition id."""
    fields = state.model_dump(mode="json", exclude_none=True)
    if fields.get("name") == DEFAULT_STATE_NAMES[state.type]:
        del fields["name"]  # ~18 bytes an entry: the item stays under a write unit longer
    entry: dict[str, Any] = {"v": version, "s": fields}
    if transition_id is not None:
        entry["t"] = transition_id
    return json.dumps(entry, separators=(",", ":"))


def new_entries(stored: FlowRun, passed: Sequence[State],
                transition_id: str | None) -> list[tuple[int, State, str | None]]:
    """(version, state, transition id) of the entries one write appends: the states passed on
    the way (versions before the run's), then the run's own state with the transition id."""
    first = stored.version - len(passed)
    return [*((first + i, state, None) for i, state in enumerate(passed)),
            (stored.version, stored.state, transition_id)]


def inline_entries(item: items.Item | None) -> list[Entry]:
    """The entries an item carries inline (none on items written before schema 3)."""
    found: list[Entry] = []
    for value in (item or {}).get(HISTORY, {}).get("L", []):
        entry = json.loads(value["S"])
        found.append((int(entry["v"]), entry.get("t"), State.model_validate(entry["s"])))
    return found


#: How every full run document starts (pydantic writes fields in order, `id` first); a lean one
#: (schema 5, `dynamo_items.flow_run_item`) starts otherwise, as it has no id.
FULL_DOCUMENT_START = '{"id":'


def run_text(item: items.Item) -> str:
    """A run item's whole JSON document, whichever layout wrote it: a lean document (schema 5)
    gets back its id from the key, its version, flow name, deployment and pool from their
    attributes and, when it left its state out, the state of the newest inline entry. Every
    reader of a flow run goes through here."""
    text = items.data_of(item)
    if text.startswith(FULL_DOCUMENT_START):
        return text
    try:
        document = json.loads(text)
        document["id"] = item[TABLE_PARTITION_KEY]["S"][len(items.RUN_PARTITION_PREFIX):]
        document["version"] = items.version_of(item)
        for attribute, field in items.OPTIONAL_RUN_FIELDS.items():
            if attribute in item:
                document[field] = item[attribute]["S"]
        if "state" not in document:
            newest = max((json.loads(value["S"]) for value in item.get(HISTORY, {}).get("L", [])),
                         key=lambda entry: entry["v"], default=None)
            if newest is not None:  # else the read names the missing state
                document["state"] = newest["s"]
    except (KeyError, TypeError, ValueError) as error:  # a damaged item: lists skip it
        problem = f"its document or attributes are damaged ({type(error).__name__}: {error})"
        raise UnreadableRecord(
            f"the stored item {items.item_ref(item)} cannot be read ({problem}): restore or "
            "delete it", details={"id": items.item_ref(item), "problem": problem}) from None
    return json.dumps(document)


def run_of(item: items.Item) -> FlowRun:
    """The flow run in a run item (`run_text`); a pydantic error or `UnreadableRecord` when it
    cannot be read (`records.readable` skips such items in lists)."""
    return FlowRun.model_validate_json(run_text(item))


def applied_transition(item: items.Item | None, transition_id: str) -> bool:
    return transition_id in (item or {}).get(TRANSITION_IDS, {}).get("SS", [])


def with_history(item: items.Item,
                 entries: Sequence[tuple[int, State, str | None]]) -> items.Item:
    """The whole run item (`dynamo_items.flow_run_item`) with `entries` as its inline history
    (a create, or after a spill)."""
    texts = [entry_text(version, state, tid) for version, state, tid in entries]
    item = dict(item)
    item[HISTORY] = {"L": [items.s(text) for text in texts]}
    item[HISTORY_BYTES] = items.n(sum(len(text) for text in texts))
    ids = [tid for _, _, tid in entries if tid is not None]
    if ids:
        item[TRANSITION_IDS] = {"SS": ids}
    return item


def state_update(table: SingleTable, before: FlowRun, item: items.Item,
                 entries: Sequence[tuple[int, State, str | None]],
                 transition_id: str | None) -> dict[str, Any]:
    """The conditional UpdateItem of a state change (also a transaction's "Update"): the run's
    JSON and index attributes replaced by those of `item` (its new `flow_run_item`), `entries`
    appended to the inline history."""
    texts = [entry_text(version, state, tid) for version, state, tid in entries]
    added = sum(len(text) for text in texts)
    expression, names, values = _document_update(before, item)
    expression += (", #hist = list_append(if_not_exists(#hist, :empty), :entries)"
                   ", #hbytes = if_not_exists(#hbytes, :zero) + :added")
    names.update({"#hist": HISTORY, "#hbytes": HISTORY_BYTES})
    values.update({":empty": {"L": []}, ":entries": {"L": [items.s(t) for t in texts]},
                   ":zero": items.n(0), ":added": items.n(added),
                   ":room": items.n(INLINE_HISTORY_MAX_ENTRIES - len(texts)),
                   ":room_bytes": items.n(INLINE_HISTORY_MAX_BYTES - added)})
    condition = (f"{VERSION_CONDITION}"
                 " AND (attribute_not_exists(#hist) OR size(#hist) <= :room)"
                 " AND (attribute_not_exists(#hbytes) OR #hbytes <= :room_bytes)")
    if transition_id is not None:
        expression += " ADD #tids :tid"
        names["#tids"] = TRANSITION_IDS
        values[":tid"] = {"SS": [transition_id]}
        values[":tid_text"] = items.s(transition_id)
        condition += " AND NOT contains(#tids, :tid_text)"
    expression = _with_removals(expression, names)
    return table.update_request(items.run_key(before.id), expression, names, values, condition)


def document_update(table: SingleTable, before: FlowRun, item: items.Item) -> dict[str, Any]:
    """The conditional UpdateItem of a change without a new state (a renewal, an enqueue
    mark): the JSON and index attributes of `item` only, so the inline history stays as it is."""
    expression, names, values = _document_update(before, item)
    expression = _with_removals(expression, names)
    return table.update_request(items.run_key(before.id), expression, names, values,
                                VERSION_CONDITION)


def spill_writes(table: SingleTable, current: items.Item, before: FlowRun, item: items.Item,
                 entries: Sequence[tuple[int, State, str | None]]
                 ) -> list[tuple[str, dict[str, Any]]]:
    """A full history's way out: the run item written again with only `entries` inline (still
    compare-and-set on the version), its inline entries as `STATE#` items and their
    transition ids as guards, for one transaction (at most 2 x 24 + 1 items)."""
    names, values = version_names_and_values(before)
    writes: list[tuple[str, dict[str, Any]]] = [("Put", table.put_request(
        with_history(item, entries), VERSION_CONDITION, names, values))]
    expires_at = int(item[TTL_ATTRIBUTE]["N"])
    for version, tid, state in inline_entries(current):
        writes.append(("Put", table.put_request(
            items.history_item(before.id, version, state, tid, expires_at))))
        if tid is not None:
            writes.append(("Put", table.put_request(
                {**items.transition_key(before.id, tid), TTL_ATTRIBUTE: items.n(expires_at)})))
    return writes


def history_version(history_item: items.Item) -> int:
    """The version a `STATE#<v>` item is the entry of."""
    return int(history_item[TABLE_SORT_KEY]["S"][len(items.HISTORY_PREFIX):])


def merged_history(run_item_found: items.Item | None,
                   outside: Sequence[tuple[int, State]]) -> list[State]:
    """Every state of a run, oldest first: the `(version, state)` of its `STATE#` items and
    its inline entries, by version."""
    by_version = dict(outside)
    for version, _, state in inline_entries(run_item_found):
        by_version[version] = state
    return [by_version[version] for version in sorted(by_version)]


#: The compare-and-set of every write of a run item (`version_names_and_values`).
VERSION_CONDITION = "attribute_exists(#pk) AND #version = :expected"


def version_names_and_values(before: FlowRun) -> tuple[dict[str, str], dict[str, Any]]:
    """The names and values `VERSION_CONDITION` needs: the run still at `before.version`."""
    return ({"#pk": TABLE_PARTITION_KEY, "#version": items.VERSION},
            {":expected": items.n(before.version)})


def _document_update(before: FlowRun, item: items.Item
                     ) -> tuple[str, dict[str, str], dict[str, Any]]:
    """SET of every non-key attribute of `item`, with the names and values of the version
    condition."""
    names, values = version_names_and_values(before)
    clauses = []
    for i, (name, value) in enumerate(item.items()):
        if name in (TABLE_PARTITION_KEY, TABLE_SORT_KEY):
            continue
        names[f"#d{i}"] = name
        values[f":d{i}"] = value
        clauses.append(f"#d{i} = :d{i}")
    return "SET " + ", ".join(clauses), names, values


def _with_removals(expression: str, names: dict[str, str]) -> str:
    """Index attributes the run no longer has are removed (an index key cannot be empty)."""
    present = set(names.values())
    gone = [name for name in items.OPTIONAL_RUN_ATTRIBUTES if name not in present]
    if not gone:
        return expression
    for i, name in enumerate(gone):
        names[f"#r{i}"] = name
    return expression + " REMOVE " + ", ".join(f"#r{i}" for i in range(len(gone)))
