"""Who may do what on the embedded server: its tokens (`sluice.tokens`) checked against the
same route table IAM enforces on AWS (`sluice_functions.access`).

Decided from the request line and headers alone, before any body byte is read. A token that is
not the server's is 401; a valid token calling a route beyond its rights is 403, naming both.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from sluice import tokens
from sluice.exceptions import SluiceError

from .. import access

if TYPE_CHECKING:
    from ..ports import RunStore

#: What a worker key may do on its queue: what `sluice_worker.queue.PoolQueue` calls (the same
#: actions as the worker policy on AWS, plus finding its queue's URL).
WORKER_SQS_ACTIONS = frozenset({"GetQueueUrl", "ReceiveMessage", "DeleteMessage",
                                "ChangeMessageVisibility"})
#: Parents followed from a subflow run to the run a flow-process token is for.
MAX_SUBFLOW_DEPTH = 32

Refusal = tuple[int, str, str]
#: Where the embedded server serves bundle bytes (what an S3 presigned URL is on AWS): a worker
#: learns a bundle's address only from `GET /pools/{pool}/bundles/{sha256}`, which checks that
#: a deployment of its pool runs it.
BUNDLE_DOWNLOAD = ("GET", "/bundle-data/*")

_NO_TOKEN = (401, "unauthorized",
             "this server needs a token: send `Authorization: Bearer <token>` (the `local` "
             "profile has it; or set SLUICE_API_TOKEN / SLUICE_API_TOKEN_FILE)")
_BAD_TOKEN = (401, "unauthorized",
              "the token is not valid on this server (a token of another server, or of one "
              "whose operator token changed): use the profile `sluice server start` wrote, or "
              "derive a worker token again with `sluice pool token`")


class TokenAuthorizer:
    """Checks requests against the operator's token and the tokens derived from it. `store`
    resolves subflow runs to the run a flow-process token was made for."""

    def __init__(self, operator_token: str, store: RunStore | None = None) -> None:
        self.operator_token = operator_token
        self.store = store

    def scope_of(self, authorization: str | None) -> tokens.TokenScope | Refusal:
        if not authorization:
            return _NO_TOKEN
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return _NO_TOKEN
        scope = tokens.identify(token.strip(), self.operator_token)
        return scope if scope is not None else _BAD_TOKEN

    def refusal(self, method: str, target: str, authorization: str | None) -> Refusal | None:
        """None when `method target` may go on with this Authorization header, else the
        answer (status, error code, message)."""
        scope = self.scope_of(authorization)
        if isinstance(scope, tuple):
            return scope
        if scope.principal == "operator":
            return None
        path = unquote(urlsplit(target).path)  # what the API routes on, as API Gateway does
        allowed = (access.worker_requests(scope.pool or "") + [BUNDLE_DOWNLOAD]
                   if scope.principal == "worker"
                   else access.flow_process_requests(scope.pool or ""))
        for deployment in scope.may_trigger:
            allowed += access.trigger_requests(deployment)
        if not access.matches(allowed, method, path):
            return (403, "forbidden",
                    f"{scope.describe()} may not call {method} {path}: workers and flow "
                    "processes reach only their pool's routes (`/pools/{pool}/...`); operator "
                    "actions need the operator's token")
        if scope.principal == "flow-process":
            return self._outside_run(scope, path)
        return None

    def _outside_run(self, scope: tokens.TokenScope, path: str) -> Refusal | None:
        """A flow-process token reaches its own run and that run's subflows only."""
        prefix = f"/pools/{scope.pool}/flow-runs/"
        if not path.startswith(prefix):
            return None
        target, _, action = path[len(prefix):].partition("/")
        if action == "heartbeat" and target == scope.flow_run_id:
            # Its worker renews its lease (and stops renewing when it should stop): the flow
            # process renews only the leases of the subflows it runs.
            return (403, "forbidden", f"{scope.describe()} may not renew its own lease: its "
                                      "worker does")
        if self._descends_from(target, scope.flow_run_id or ""):
            return None
        return (403, "forbidden",
                f"{scope.describe()} may reach its own run and its subflows only, not flow run "
                f"{target}")

    def _descends_from(self, flow_run_id: str, ancestor: str) -> bool:
        current: str | None = flow_run_id
        for _ in range(MAX_SUBFLOW_DEPTH):
            if current == ancestor:
                return True
            if current is None or self.store is None:
                return False
            try:
                current = self.store.get_flow_run(current).parent_flow_run_id
            except SluiceError:  # not found, unreadable: no descendant of `ancestor`
                return False
        return False

    # -- SQS ---------------------------------------------------------------------------------
    def sqs_secret(self, access_key: str) -> tuple[str, str | None]:
        """(secret to check the SigV4 signature with, pool the key is limited to or None)."""
        return tokens.token_for_sqs_access_key(access_key, self.operator_token)

    @staticmethod
    def sqs_queue_allowed(pool: str | None, target: str, body: bytes, queue_of: Any) -> bool:
        """Whether an SQS request of a key limited to `pool` names that pool's queue (not its
        dead-letter queue);
        `queue_of(url)` gives (pool, is dead-letter queue) of a queue URL."""
        if pool is None:
            return True
        if target.removeprefix("AmazonSQS.") not in WORKER_SQS_ACTIONS:
            return False
        try:
            request = json.loads(body or b"{}")
            if "QueueUrl" not in request:  # GetQueueUrl names the queue
                return request.get("QueueName") == pool
            named, dead_letter = queue_of(request["QueueUrl"])
        except Exception:  # noqa: BLE001 - a body the endpoint will refuse anyway
            return False
        return named == pool and not dead_letter
