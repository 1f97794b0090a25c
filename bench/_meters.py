"""What `aws_requests.py` and `scale_targets.py` meter on the real AWS adapters (on moto): DynamoDB
request units estimated from item sizes (`DynamoMeter`), SQS requests and CloudWatch Logs bytes
(`RequestMeter`), and the log lines every invocation adds. `aws_requests.py`'s docstring says
how each is counted."""

from __future__ import annotations

import collections
import json
import math
import os
import sys
from typing import Any

from _common import MOTO_REGION

#: Overhead CloudWatch Logs counts per event (PutLogEvents' batch size rule).
LOG_EVENT_OVERHEAD = 26
#: The functions' Lambda system log level (infra/sluice_infra/lambda_logging.py
#: DEFAULT_SYSTEM_LOGS, context key `sluice:lambdaSystemLogs`): at "warn" Lambda writes no line
#: of its own for an invocation that goes well.
LAMBDA_SYSTEM_LOGS = "warn"
#: The two platform lines Lambda writes per invocation with the JSON log format at system log
#: level INFO (`sluice:lambdaSystemLogs=info`); samples of their usual size.
PLATFORM_LINES_AT_INFO = (
    '{"time":"2025-05-12T10:00:00.000Z","type":"platform.start","record":{"requestId":'
    '"8f5c1a2e-1234-4abc-9def-0123456789ab","version":"$LATEST"}}',
    '{"time":"2025-05-12T10:00:00.050Z","type":"platform.report","record":{"requestId":'
    '"8f5c1a2e-1234-4abc-9def-0123456789ab","metrics":{"durationMs":12.34,"billedDurationMs":13,'
    '"memorySizeMB":512,"maxMemoryUsedMB":98},"status":"success"}}',
)
#: The platform lines per invocation as the stack is deployed by default.
PLATFORM_LINES = PLATFORM_LINES_AT_INFO if LAMBDA_SYSTEM_LOGS == "info" else ()
#: One API access log line (the short keys of infra/sluice_infra/http_api.py
#: ACCESS_LOG_FIELDS), with typical values; method `m`, path `p` and status `s` are filled in
#: per request.
ACCESS_LOG_SAMPLE = {
    "id": "Yx3LbhPjIAMEbkw=", "t": "1747044000000", "m": "POST", "p": "", "s": "200",
    "ms": "25", "err": "-",
    "who": "arn:aws:sts::123456789012:assumed-role/sluice-worker/i-0123456789abcdef0",
}


#: Sort keys of task-run items (sluice_functions.adapters.aws.dynamo_items.TASK_PREFIX; not
#: imported here: this module imports the control plane only once moto is set up).
TASK_RUN_SORT_PREFIX = "TASK#"


def log_event_bytes(message: str) -> int:
    return len(message.encode()) + LOG_EVENT_OVERHEAD


PLATFORM_BYTES = sum(log_event_bytes(line) for line in PLATFORM_LINES)


# ---- usage: what one request, one run, one tick consumed -----------------------------------------

Usage = collections.Counter  # str -> float; keys below


def usage_of(counts: dict[str, float]) -> Usage:
    return collections.Counter({k: v for k, v in counts.items() if v})


def rounded(usage: dict[str, float], digits: int = 3) -> dict[str, float]:
    return {k: round(v, digits) for k, v in sorted(usage.items()) if v}


# ---- DynamoDB request units from item sizes ------------------------------------------------------

def _number_size(text: str) -> int:
    digits = text.lstrip("-").replace(".", "").strip("0") or "0"
    return (len(digits) + 1) // 2 + 1


def attribute_size(value: dict[str, Any]) -> int:
    """Bytes of one attribute value as DynamoDB sizes items (names are counted by the caller)."""
    (kind, data), = value.items()
    if kind == "S":
        return len(data.encode())
    if kind == "N":
        return _number_size(data)
    if kind == "B":
        return len(data)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(x.encode()) for x in data)
    if kind == "NS":
        return sum(_number_size(x) for x in data)
    if kind == "BS":
        return sum(len(x) for x in data)
    if kind == "L":
        return 3 + sum(1 + attribute_size(x) for x in data)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + attribute_size(x) for k, x in data.items())
    raise ValueError(kind)


def item_size(item: dict[str, Any] | None) -> int:
    if not item:
        return 0
    return sum(len(name.encode()) + attribute_size(value) for name, value in item.items())


def units(size: int, unit: int) -> int:
    return max(1, math.ceil(size / unit))


class DynamoMeter:
    """Counts DynamoDB requests and estimates their request units (see the module docstring).

    Before a write it reads the items' current images, after it their new ones, through a
    second client that nobody meters (moto keeps one backend per process). Those reads take
    time inside the handler, so handler times come from a pass with `units` off."""

    def __init__(self, shadow: Any, indexes: list[tuple[str, str, tuple[str, ...]]],
                 table_keys: tuple[str, str], sink: Any) -> None:
        self.shadow, self.indexes, self.table_keys, self.sink = shadow, indexes, table_keys, sink
        #: Estimate request units (extra reads); off while handler times are measured.
        self.units = True

    @classmethod
    def attached(cls, dynamodb: Any, sink: Any) -> DynamoMeter:
        """A meter of the stack's table (`_common.moto_stack`), attached to `dynamodb`."""
        import boto3

        from sluice_functions.config import (GLOBAL_INDEXES, TABLE_PARTITION_KEY,
                                             TABLE_SORT_KEY)

        shadow = boto3.session.Session().client("dynamodb", region_name=MOTO_REGION)
        indexes = [(i.partition_key, i.sort_key, i.projected_attributes) for i in GLOBAL_INDEXES]
        meter = cls(shadow, indexes, (TABLE_PARTITION_KEY, TABLE_SORT_KEY), sink)
        meter.attach(dynamodb)
        return meter

    def attach(self, client: Any) -> None:
        client.meta.events.register("before-parameter-build.dynamodb", self._before)
        client.meta.events.register("after-call.dynamodb", self._after)

    # -- item images
    def _key(self, item: dict[str, Any]) -> dict[str, Any]:
        return {name: item[name] for name in self.table_keys}

    def _image(self, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
        return self.shadow.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")

    def _writes(self, op: str, params: dict[str, Any]) -> list[tuple[str, dict, dict | None, int]]:
        """(table, key, attempted item or None, multiplier) of every item a write touches."""
        if op == "PutItem":
            return [(params["TableName"], self._key(params["Item"]), params["Item"], 1)]
        if op in ("UpdateItem", "DeleteItem"):
            return [(params["TableName"], params["Key"], None, 1)]
        if op == "TransactWriteItems":
            found = []
            for entry in params["TransactItems"]:
                (kind, request), = entry.items()
                item = request.get("Item")
                key = self._key(item) if item else request["Key"]
                found.append((request["TableName"], key, item, 2))
            return found
        if op == "BatchWriteItem":
            found = []
            for table, requests in params["RequestItems"].items():
                for entry in requests:
                    if "PutRequest" in entry:
                        item = entry["PutRequest"]["Item"]
                        found.append((table, self._key(item), item, 1))
                    else:
                        found.append((table, entry["DeleteRequest"]["Key"], None, 1))
            return found
        return []

    def _before(self, params: dict[str, Any], model: Any, context: dict[str, Any],
                **_: Any) -> None:
        context["sluice_params"] = params
        if not self.units:
            return
        writes = self._writes(model.name, params)
        context["sluice_before"] = [(t, k, a, m, self._image(t, k)) for t, k, a, m in writes]

    def _projection(self, item: dict[str, Any] | None, index: tuple[str, str, tuple[str, ...]]
                    ) -> dict[str, Any] | None:
        partition, sort, projected = index
        if not item or partition not in item or sort not in item:
            return None
        names = (*self.table_keys, partition, sort, *projected)
        return {name: item[name] for name in names if name in item}

    def _index_wru(self, before: dict | None, after: dict | None) -> int:
        total = 0
        for index in self.indexes:
            old, new = self._projection(before, index), self._projection(after, index)
            if old is None and new is None or old == new:
                continue
            if old is None:
                total += units(item_size(new), 1024)
            elif new is None:
                total += units(item_size(old), 1024)
            elif all(old[k] == new[k] for k in index[:2]):
                total += units(max(item_size(old), item_size(new)), 1024)
            else:  # the index key changed: a delete and a put
                total += units(item_size(old), 1024) + units(item_size(new), 1024)
        return total

    def _after(self, http_response: Any, parsed: dict[str, Any], model: Any,
               context: dict[str, Any], **_: Any) -> None:
        op = model.name
        params = context.get("sluice_params", {})
        failed = http_response.status_code >= 300
        usage: Usage = collections.Counter({f"dynamodb.{op}": 1})
        if not self.units:
            self.sink(usage)
            return
        wru = rru = task_wru = 0.0
        for table, key, attempted, multiplier, before in context.get("sluice_before", []):
            after = before if failed else self._image(table, key)
            size = max(item_size(before), item_size(after), item_size(attempted) if failed else 0)
            written = multiplier * units(size, 1024)
            index_wru = 0 if failed else self._index_wru(before, after)
            written += index_wru
            if os.environ.get("SLUICE_TRACE_WRU"):
                print(f"TRACE {op} {key.get(self.table_keys[0],{}).get('S','')[:12]} {key.get(self.table_keys[1],{}).get('S','')[:30]} size={size} x{multiplier} idx={index_wru} failed={failed}", file=sys.stderr)
                if os.environ.get("SLUICE_TRACE_WRU") == "2" and after:
                    print("ITEM", json.dumps(after, default=repr)[:6000], file=sys.stderr)
            wru += written
            if key.get(self.table_keys[1], {}).get("S", "").startswith(TASK_RUN_SORT_PREFIX):
                task_wru += written  # the cost model's price of one task-run record
        consistent = bool(params.get("ConsistentRead"))
        if op == "GetItem":
            if os.environ.get("SLUICE_TRACE_WRU"):
                print(f"TRACE GetItem {params['Key']} strong={params.get('ConsistentRead')}", file=sys.stderr)
            rru = units(item_size(parsed.get("Item")), 4096) * (1 if consistent else 0.5)
        elif op == "BatchGetItem":
            for table, request in params.get("RequestItems", {}).items():
                scale = 1 if request.get("ConsistentRead") else 0.5
                found = {json.dumps(self._key(i), sort_keys=True): i
                         for i in parsed.get("Responses", {}).get(table, [])}
                unprocessed = len((parsed.get("UnprocessedKeys") or {}).get(table, {})
                                  .get("Keys", []))
                for k in request["Keys"][: len(request["Keys"]) - unprocessed]:
                    rru += scale * units(item_size(found.get(json.dumps(k, sort_keys=True))),
                                         4096)
        elif op in ("Query", "Scan") and not failed:
            # What the key condition read: the same request without filter, projection, COUNT.
            plain = {k: v for k, v in params.items()
                     if k not in ("FilterExpression", "Select", "ProjectionExpression")}
            # Names and values only the dropped expressions used would be refused as unused.
            used = plain.get("KeyConditionExpression", "")
            for part in ("ExpressionAttributeValues", "ExpressionAttributeNames"):
                kept = {k: v for k, v in (plain.get(part) or {}).items() if k in used}
                if kept:
                    plain[part] = kept
                else:
                    plain.pop(part, None)
            read = getattr(self.shadow, "query" if op == "Query" else "scan")(**plain)
            size = sum(item_size(i) for i in read.get("Items", []))
            rru = units(size, 4096) * (1 if consistent and "IndexName" not in params else 0.5)
        elif op == "TransactGetItems":
            rru = 2 * sum(units(item_size(r.get("Item")), 4096)
                          for r in parsed.get("Responses", []))
        usage["dynamodb_wru"] += wru
        usage["dynamodb_rru"] += rru
        if task_wru:
            usage["dynamodb_wru_task_runs"] += task_wru
        self.sink(usage)


class RequestMeter:
    """SQS and CloudWatch Logs requests: counts, billed SQS requests, log bytes ingested."""

    def __init__(self, sink: Any) -> None:
        self.sink = sink

    def attach(self, client: Any) -> None:
        client.meta.events.register("before-call", self._before)
        client.meta.events.register("after-call", self._after)

    @staticmethod
    def _before(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        body = params.get("body") or b""
        context["sluice_request_bytes"] = len(body if isinstance(body, bytes) else body.encode())

    def _after(self, http_response: Any, parsed: dict[str, Any], model: Any,
               context: dict[str, Any], **_: Any) -> None:
        service = model.service_model.service_name
        usage: Usage = collections.Counter({f"{service}.{model.name}": 1})
        if service == "sqs":
            payload = max(context.get("sluice_request_bytes", 0), len(http_response.content or b""))
            usage["sqs_requests"] += units(payload, 64 * 1024)
            if model.name == "ReceiveMessage":
                usage["sqs_empty_receives" if not parsed.get("Messages") else
                      "sqs_message_receives"] += 1
        elif service == "logs":
            if model.name == "PutLogEvents" and http_response.status_code < 300:
                usage["logs_bytes_run_logs"] += sum(
                    log_event_bytes(e["message"]) for e in context["sluice_log_events"])
            elif model.name == "GetLogEvents":
                usage["logs_read_requests"] += 1
        self.sink(usage)


def remember_log_events(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    context["sluice_log_events"] = params.get("logEvents", [])
    if os.environ.get("SLUICE_TRACE_WRU"):
        for e in params.get("logEvents", []):
            print("TRACE LOG", e["message"][:300], file=sys.stderr)
