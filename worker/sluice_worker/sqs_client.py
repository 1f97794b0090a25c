"""The worker's SQS client: botocore alone, holding only the SQS part of its endpoint table.

`boto3.client("sqs")` costs an idle worker about 18 MiB (issue 20). Two parts of it buy the
worker nothing: boto3 itself (its resource layer and s3transfer, ~2.6 MiB; a boto3 client is a
botocore client), and botocore's endpoint table, `data/endpoints.json` (1.2 MB, every service
of every partition), which a client parses into OrderedDicts and keeps for the life of the
process (~7 MiB) although it looks up one service. Freed memory stays resident (the allocator
keeps its arenas), so pruning the table after the parse would not help: it is read in a
short-lived child process, with botocore's own loader and search path (`AWS_DATA_PATH`
included), which hands back the partitions with only the SQS entry. Endpoint resolution is
unchanged: each partition keeps its regions, defaults and DNS suffix, and the SQS entry is the
one the full table has. If the child fails, the client reads the full table as usual.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections import OrderedDict
from typing import Any

log = logging.getLogger("sluice.worker")

#: The services whose endpoint entries the worker's botocore session keeps.
KEPT_SERVICES = ("sqs",)
#: Seconds the child gets to read the table (it takes about 0.2 s).
PRUNE_TIMEOUT_SECONDS = 30

_PRUNE_ENDPOINTS = """
import json, sys
from botocore.loaders import create_loader
data, path = create_loader(sys.argv[1] or None).load_data_with_path("endpoints")
kept = set(sys.argv[2].split(","))
for partition in data["partitions"]:
    partition["services"] = {name: entry for name, entry in partition["services"].items()
                             if name in kept}
json.dump({"path": path, "data": data}, sys.stdout)
"""


class _PreloadedFileLoader:
    """botocore's JSON file loader, except that one file's data is already loaded."""

    def __init__(self, inner: Any, path: str, data: Any) -> None:
        self._inner, self._path, self._data = inner, path, data

    def exists(self, file_path: str) -> bool:
        return file_path == self._path or self._inner.exists(file_path)

    def load_file(self, file_path: str) -> Any:
        if file_path == self._path:
            return self._data
        return self._inner.load_file(file_path)


def pruned_endpoints(data_path: str | None) -> tuple[str, Any] | None:
    """Where botocore finds its endpoint table and the table with only `KEPT_SERVICES`
    (read in a child process); None if that failed."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", _PRUNE_ENDPOINTS, data_path or "", ",".join(KEPT_SERVICES)],
            stdin=subprocess.DEVNULL, capture_output=True, timeout=PRUNE_TIMEOUT_SECONDS,
            check=True)
        answer = json.loads(done.stdout, object_pairs_hook=OrderedDict)  # as botocore loads
        return answer["path"], answer["data"]
    except (OSError, subprocess.SubprocessError, ValueError, KeyError) as exc:
        log.debug("reading the full endpoint table: the pruned one failed (%s)", exc)
        return None


def sqs_client(**client_kwargs: Any) -> Any:
    """A botocore SQS client, as `boto3.client("sqs", **client_kwargs)` makes it (the same
    credential chain, configuration and endpoint resolution), without boto3 and with the
    SQS part of the endpoint table only."""
    import botocore.session

    session = botocore.session.get_session()
    loader = session.get_component("data_loader")
    pruned = pruned_endpoints(session.get_config_variable("data_path"))
    if pruned is not None:
        loader.file_loader = _PreloadedFileLoader(loader.file_loader, *pruned)
    return session.create_client("sqs", **client_kwargs)
