"""How Sluice's records become DynamoDB items in the single table, and back.

Item layout (partition key `pk`, sort key `sk`; names in `sluice_functions.config`):

| item                     | pk                          | sk                         | TTL |
|--------------------------|-----------------------------|----------------------------|-----|
| flow run (+ its newest history, `dynamo_run_item`) | `RUN#<run id>` | `RUN`        | yes |
| state history entry (older, or before schema 3) | `RUN#<run id>` | `STATE#<version, 0-padded>` | yes |
| transition-id guard (idem) | `RUN#<run id>`            | `TRANSITION#<id>`          | yes |
| task run                 | `RUN#<flow run id>`         | `TASK#<task run id>`       | yes |
| finished task runs, packed (`dynamo_task_sheets`) | `RUN#<flow run id>` | `TASK#<first id>~<digest>` | yes |
| idempotency-key guard    | `IDEMPOTENCY#<key>`         | `IDEMPOTENCY`              | yes |
| deployment (by id)       | `DEPLOYMENT#<id>`           | `DEPLOYMENT`               | no  |
| deployment (by name)     | `DEPLOYMENT_NAMES`          | `<flow name>\\0<name>`     | no  |
| pool                     | `POOLS`                     | `<pool name>`              | no  |
| worker                   | `WORKERS#<pool>`            | `<worker name>`            | yes |
| worker session (leases)  | `WORKER_SESSION#<session>`  | `SESSION`                  | yes |
| slot holder (active run) | `ACTIVE#deployment#<id>`, `ACTIVE#pool#<name>` | `<run id>` | no  |

Everything of one run shares its partition, so history and task runs are single Queries. A
run whose state is active is listed under its deployment and its pool (slot holders, written in
the same transaction as the state), so concurrency limits count with a consistent read; a count
removes holders whose run no longer holds the slot (`dynamo_slots`), so they need no TTL.
Records are stored whole as a JSON document (`data`), so fields added to `sluice.models`
round-trip without touching this module; key and index attributes sit beside it. From schema 4
(`config.COMPRESSED_ITEMS_SCHEMA`) a flow run's `data` is that JSON zlib-compressed (Binary):
readers go through `data_of`, which reads both. From schema 5 (`config.LEAN_RUN_DOCUMENT_SCHEMA`)
that JSON leaves out what the run item's key and attributes hold, and is deflated with a preset
dictionary; run readers go through `dynamo_run_item.run_text`, which puts it back. Deployments
and pools are configuration and never expire; everything a run produces, and workers, do.
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from datetime import datetime
from typing import Any

from sluice.exceptions import BadRequest
from sluice.models import FlowRun, State

from ...config import (
    RUN_DEPLOYMENT_ID,
    RUN_ENTITY,
    RUN_ENTITY_FLOW_RUN,
    RUN_FLOW_NAME,
    RUN_ORDER,
    RUN_POOL,
    RUN_STATE_TYPE,
    SCHEMA_VERSION,
    SCHEMA_VERSION_ATTRIBUTE,
    TABLE_PARTITION_KEY,
    TABLE_SORT_KEY,
    TTL_ATTRIBUTE,
)
from ...timemath import as_utc
from ..records import UnreadableRecord

Item = dict[str, dict[str, Any]]

DATA = "data"
#: zlib level of compressed documents (schema 4, `compressed`): level 6 is within a few bytes
#: of 9 on a run's JSON and a task sheet, at a fraction of the CPU (the Lambda pays it per write).
COMPRESSION_LEVEL = 6
#: A compressed document decodes to at most this many bytes: DynamoDB's item limit is 400 KB
#: (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html), and
#: no writer stores more than it uncompressed, so a larger result is a damaged item.
MAX_DECODED_DATA_BYTES = 400 * 1024
#: The preset dictionary of lean run documents (schema 5, `flow_run_item`): the field names and
#: fixed text a run's JSON repeats, most common last, so zlib's back-references reach into it
#: and a claimed run's ~600 bytes of JSON compress to ~220 bytes instead of ~300. Stored items
#: depend on these exact bytes: never edit them. A better dictionary needs a new schema, and
#: this one kept for reading (a stream names its dictionary by Adler-32, RFC 1950's DICTID).
RUN_DOCUMENT_DICTIONARY = (
    b'"tags":[],"retries":,"retry_delay_seconds":,"parent_flow_run_id":"",'
    b'"parent_task_run_id":"","worker_pool":"","idempotency_key":"","slot_scopes":'
    b'[["deployment",""],["pool",""]],"ended_lease":"",{"type":"RUNNING","name":"Running",'
    b'"timestamp":"","message":"","scheduled_time":"","details":{}},{"name":"","state":,'
    b'"parameters":{},"scheduled_at":"","start_time":"","end_time":"","run_count":1,'
    b'"created_by":"arn:aws:iam::","created":"","updated":"","worker":"","heartbeat_at":"",'
    b'"lease":"","claim_id":"","enqueued_at":"","lease_expires_at":"","lease_session":"'
)
VERSION = "version"
TRANSITION_ID = "transition_id"
#: On a deployment's name item: which deployment holds the (flow name, name) pair.
DEPLOYMENT_ID = "deployment_id"
#: On a pool item, apart from its JSON so an upsert keeps the first one atomically.
CREATED = "created"
#: On an idempotency guard: the run that holds the key.
FLOW_RUN_ID = "flow_run_id"

RUN_SORT_KEY = "RUN"
HISTORY_PREFIX = "STATE#"
TRANSITION_PREFIX = "TRANSITION#"
TASK_PREFIX = "TASK#"
IDEMPOTENCY_SORT_KEY = "IDEMPOTENCY"
DEPLOYMENT_SORT_KEY = "DEPLOYMENT"
DEPLOYMENT_NAMES_PARTITION = "DEPLOYMENT_NAMES"
#: Sorts below every printable character, so "<flow>\0<name>" orders like (flow, name).
NAME_SEPARATOR = "\x00"
POOLS_PARTITION = "POOLS"
WORKER_SESSION_SORT_KEY = "SESSION"
#: Attributes of a worker item that are not worker fields.
ITEM_BOOKKEEPING = frozenset({TABLE_PARTITION_KEY, TABLE_SORT_KEY, TTL_ATTRIBUTE,
                              SCHEMA_VERSION_ATTRIBUTE})
#: Index attributes a flow-run item has only when the run has the value, and the run field
#: each holds (a lean document, schema 5, leaves the field out when the attribute is there).
OPTIONAL_RUN_FIELDS = {RUN_FLOW_NAME: "flow_name", RUN_DEPLOYMENT_ID: "deployment_id",
                       RUN_POOL: "pool"}
OPTIONAL_RUN_ATTRIBUTES = tuple(OPTIONAL_RUN_FIELDS)
#: Versions are zero-padded so the history sorts numerically as strings.
VERSION_DIGITS = 12


def s(value: str) -> dict[str, str]:
    return {"S": value}


def n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def stamped(item: Item) -> Item:
    """`item` marked with the layout version this code writes (`config.SCHEMA_VERSION`)."""
    return {**item, SCHEMA_VERSION_ATTRIBUTE: n(SCHEMA_VERSION)}


def key(pk: str, sk: str) -> Item:
    return {TABLE_PARTITION_KEY: s(pk), TABLE_SORT_KEY: s(sk)}


RUN_PARTITION_PREFIX = "RUN#"


def run_partition(flow_run_id: str) -> str:
    return f"{RUN_PARTITION_PREFIX}{flow_run_id}"


def run_key(flow_run_id: str) -> Item:
    return key(run_partition(flow_run_id), RUN_SORT_KEY)


def history_key(flow_run_id: str, version: int) -> Item:
    return key(run_partition(flow_run_id), f"{HISTORY_PREFIX}{version:0{VERSION_DIGITS}d}")


def transition_key(flow_run_id: str, transition_id: str) -> Item:
    return key(run_partition(flow_run_id), f"{TRANSITION_PREFIX}{transition_id}")


def task_run_key(flow_run_id: str, task_run_id: str) -> Item:
    return key(run_partition(flow_run_id), f"{TASK_PREFIX}{task_run_id}")


def idempotency_key(key_value: str) -> Item:
    return key(f"IDEMPOTENCY#{key_value}", IDEMPOTENCY_SORT_KEY)


def deployment_key(deployment_id: str) -> Item:
    return key(f"DEPLOYMENT#{deployment_id}", DEPLOYMENT_SORT_KEY)


def deployment_name_sort_key(flow_name: str, name: str = "") -> str:
    return f"{flow_name}{NAME_SEPARATOR}{name}"


def deployment_name_key(flow_name: str, name: str) -> Item:
    return key(DEPLOYMENT_NAMES_PARTITION, deployment_name_sort_key(flow_name, name))


def pool_key(name: str) -> Item:
    return key(POOLS_PARTITION, name)


def slot_holder_key(scope: str, name: str, flow_run_id: str) -> Item:
    """One run holding a slot of a deployment or a pool ("deployment"/"pool", id or name).

    Concurrency limits count these, not the run indexes: a partition of the table is read with
    strong consistency, so simultaneous claims see each other (a GSI may lag by a second)."""
    return key(slot_holders_partition(scope, name), flow_run_id)


def slot_holders_partition(scope: str, name: str) -> str:
    return f"ACTIVE#{scope}#{name}"


def slot_scopes(run: FlowRun) -> list[tuple[str, str]]:
    """(scope, deployment id or pool name) of the limits the run's attempt was admitted under:
    only runs subject to a limit are listed, so the others cost no extra write."""
    names = {"deployment": run.deployment_id, "pool": run.pool}
    return [(scope, names[scope]) for scope in run.slot_scopes if names.get(scope)]


def workers_partition(pool: str) -> str:
    return f"WORKERS#{pool}"


def worker_key(pool: str, name: str) -> Item:
    return key(workers_partition(pool), name)


def worker_session_key(session: str) -> Item:
    """The lease of one worker process over its runs (per-worker heartbeats)."""
    return key(f"WORKER_SESSION#{session}", WORKER_SESSION_SORT_KEY)


# ---- time ordering -------------------------------------------------------------------------------


def utc(moment: datetime) -> datetime:
    """Naive datetimes are taken as UTC (ports.py: datetimes are UTC in and out); a time
    whose UTC equivalent is off the calendar is clamped to its edge (`timemath.as_utc`)."""
    return as_utc(moment)


def sortable_time(moment: datetime) -> str:
    """Fixed-width UTC ISO 8601, so string order is time order (years under 1000 too, which
    strftime's %Y does not pad)."""
    return utc(moment).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def run_time(run: FlowRun) -> datetime:
    """The time a run is listed by: its `scheduled_at` (always set by the service)."""
    return run.scheduled_at or run.created or run.state.timestamp


def run_order(run: FlowRun) -> str:
    return f"{sortable_time(run_time(run))}#{run.id}"


# ---- items ---------------------------------------------------------------------------------------


def flow_run_item(run: FlowRun, expires_at: int, *, compressed: bool = False,
                  lean: bool = False, state_inline: bool = False) -> Item:
    """The run's item: its JSON (zlib-compressed when `compressed`, schema 4) plus the
    attributes the run indexes are keyed and filtered on. `lean` (schema 5, with `compressed`):
    the JSON leaves out the fields those attributes and the key hold, and the state too when
    `state_inline` (the write puts it in the inline history as the newest entry);
    `dynamo_run_item.run_text` puts them back."""
    # Schema 4 leaves out fields at their default (they read back as it; pydantic compares a
    # factory's field with a fresh value, so those stay): ~120 bytes once compressed, which
    # keeps a claimed run's item within one write unit. A release that changes a field's
    # default must keep reading these documents as written (a migration, or the old default).
    # Index keys cannot be empty strings; a run without a deployment is simply not in that index.
    optional = {name: value for name, field in OPTIONAL_RUN_FIELDS.items()
                 if (value := getattr(run, field))}
    left_out: set[str] | None = None
    if lean:
        left_out = {"id", "version", *(OPTIONAL_RUN_FIELDS[name] for name in optional)}
        if state_inline:
            left_out.add("state")
    document = run.model_dump_json(exclude_defaults=compressed, exclude=left_out)
    item: Item = {
        **run_key(run.id),
        DATA: (compressed_data(document, RUN_DOCUMENT_DICTIONARY if lean else None)
               if compressed else s(document)),
        VERSION: n(run.version),
        RUN_ENTITY: s(RUN_ENTITY_FLOW_RUN),
        RUN_ORDER: s(run_order(run)),
        RUN_STATE_TYPE: s(run.state.type.value),
        TTL_ATTRIBUTE: n(expires_at),
    }
    item.update({name: s(value) for name, value in optional.items()})
    return item


def history_item(flow_run_id: str, version: int, state: State, transition_id: str | None,
                 expires_at: int) -> Item:
    item: Item = {**history_key(flow_run_id, version), DATA: s(state.model_dump_json()),
                  TTL_ATTRIBUTE: n(expires_at)}
    if transition_id is not None:
        item[TRANSITION_ID] = s(transition_id)
    return item


def compressed_data(document: str, dictionary: bytes | None = None) -> dict[str, bytes]:
    """A JSON document as the Binary attribute value of schema 4: its UTF-8 bytes, zlib-compressed
    (write units are billed per started KB of the item:
    https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/read-write-operations.html),
    with a preset `dictionary` (schema 5's run documents) or none."""
    if dictionary is None:
        return {"B": zlib.compress(document.encode(), COMPRESSION_LEVEL)}
    deflater = zlib.compressobj(COMPRESSION_LEVEL, zdict=dictionary)
    return {"B": deflater.compress(document.encode()) + deflater.flush()}


def decoded_document(value: dict[str, Any], *, ref: str) -> str:
    """The JSON document of a `data`-like attribute value: a string (schema 3 and older) or
    zlib-compressed bytes (schema 4). Bytes that do not decode (a damaged item) raise
    `UnreadableRecord` naming `ref`: lists skip the item, a read by id refuses it (409)."""
    if "S" in value:
        return value["S"]
    try:
        # A stream without a preset dictionary never asks for it: one inflater reads both.
        inflater = zlib.decompressobj(zdict=RUN_DOCUMENT_DICTIONARY)
        text = inflater.decompress(bytes(value["B"]), MAX_DECODED_DATA_BYTES)
        if inflater.unconsumed_tail or not inflater.eof:
            raise ValueError(f"truncated, or larger than {MAX_DECODED_DATA_BYTES} bytes")
        return text.decode()
    except (zlib.error, ValueError) as error:
        problem = f"its compressed document does not decode: {error}"
        raise UnreadableRecord(
            f"the stored item {ref} cannot be read ({problem}); it was damaged: restore or "
            "delete it", details={"id": ref, "problem": problem}) from None


def data_of(item: Item) -> str:
    """The JSON document of a record's item, whichever layout wrote it (`decoded_document`):
    every reader of `data` goes through here."""
    return decoded_document(item[DATA], ref=item_ref(item))


def item_ref(item: Item) -> str:
    """How messages name an item: its keys."""
    return " ".join(item[name]["S"] for name in (TABLE_PARTITION_KEY, TABLE_SORT_KEY)
                    if name in item)


def version_of(item: Item) -> int:
    return int(item[VERSION]["N"])


def worker_fields(item: Item) -> dict[str, Any]:
    """A worker item's fields: every non-bookkeeping attribute holds one JSON-encoded field."""
    return {name: json.loads(value["S"]) for name, value in item.items()
            if name not in ITEM_BOOKKEEPING}


# ---- cursors -------------------------------------------------------------------------------------


def encode_cursor(query: str, start_key: Item) -> str:
    """An opaque cursor: the query's name and the key to continue after, base64 JSON."""
    plain = {name: value["S"] for name, value in start_key.items()}
    raw = json.dumps({"q": query, "k": plain}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, query: str, key_attributes: tuple[str, ...],
                  partition: tuple[str, str]) -> Item:
    """The ExclusiveStartKey in `cursor`; `BadRequest` unless it came from the same query."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        decoded = json.loads(base64.urlsafe_b64decode(padded.encode()))
        plain = decoded["k"]
        valid = (
            decoded["q"] == query
            and isinstance(plain, dict)
            and set(plain) == set(key_attributes)
            and all(isinstance(value, str) and value for value in plain.values())
            and plain[partition[0]] == partition[1]
        )
    except (ValueError, TypeError, KeyError, binascii.Error, UnicodeDecodeError):
        valid = False
    if not valid:
        raise BadRequest("invalid cursor: pass the next_cursor of the same listing",
                         details={"field": "cursor"})
    return {name: s(value) for name, value in plain.items()}


def key_of(item: Item, key_attributes: tuple[str, ...]) -> Item:
    return {name: item[name] for name in key_attributes}
