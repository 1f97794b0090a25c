"""Tokens of the embedded server, where a token plays the part IAM plays on AWS.

The operator's token (random, made by `sluice server start`) may do everything. From it, anyone
holding it derives, offline, a *pool token* for the workers of one pool; a worker derives from
its pool token a *run token* for each flow process it starts. Each is an HMAC of the level above,
so the server checks any of them knowing only the operator's token, a worker never holds more
than its pool's rights, and a flow process never more than its run's (`sluice_functions.access`
says which routes each may call). Rotating the operator's token revokes every derived one.

A pool token may carry grants to trigger named deployments (`run_deployment` in a flow); the
grants are inside what the HMAC covers, and run tokens inherit them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

from .exceptions import ConfigurationError

#: Shortest token the server accepts: 32 characters of `secrets.token_urlsafe` carry 192 bits;
#: what a person types as a "password" is refused (brute force over the network).
MIN_TOKEN_CHARS = 32
POOL_TOKEN_PREFIX = "sluice-pool"
RUN_TOKEN_PREFIX = "sluice-run"
#: SigV4 access key of requests signed with the operator's token (the worker's SQS calls).
OPERATOR_ACCESS_KEY = "sluice"


@dataclass(frozen=True)
class TokenScope:
    """Who a token speaks for: "operator", "worker" (of `pool`) or "flow-process" (of the run
    `flow_run_id` of `pool`), and the deployments it may trigger ("flow/name")."""

    principal: str
    pool: str | None = None
    flow_run_id: str | None = None
    may_trigger: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.principal == "operator":
            return "the operator's token"
        if self.principal == "worker":
            return f"a worker token of pool {self.pool!r}"
        return f"the token of flow run {self.flow_run_id} (pool {self.pool!r})"


def new_operator_token() -> str:
    """A fresh operator token (256 random bits)."""
    return secrets.token_urlsafe(32)


def check_operator_token(token: str, *, source: str) -> str:
    """`token` if it can be the operator's token; else `ConfigurationError` naming `source`."""
    token = token.strip()
    if len(token) < MIN_TOKEN_CHARS:
        raise ConfigurationError(
            f"the token from {source} has {len(token)} characters; at least {MIN_TOKEN_CHARS} "
            "are needed: leave it out and `sluice server start` makes a strong one, or use "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`")
    if not token.isascii() or not token.isprintable() or " " in token:
        raise ConfigurationError(f"the token from {source} must be printable ASCII without "
                                 "spaces (it travels in an HTTP header)")
    if token.startswith((POOL_TOKEN_PREFIX + ".", RUN_TOKEN_PREFIX + ".")):
        raise ConfigurationError(
            f"the token from {source} is a pool or run token: the server needs the operator's "
            "token (those are derived from it)")
    return token


def trigger_grant(ref: str) -> str:
    """`ref` if it names one deployment as "flow/name" (what a grant to trigger names); else
    `ConfigurationError` saying so."""
    from .models.names import name_problem

    flow_name, _, name = ref.partition("/")
    problem = (name_problem(flow_name, "flow") or name_problem(name, "deployment")
               if name else "a grant names one deployment as 'flow/name'")
    if problem:
        raise ConfigurationError(f"cannot grant triggering {ref!r}: {problem}")
    return ref


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: str, *parts: str) -> str:
    return _b64(hmac.new(key.encode(), "\0".join(parts).encode(), hashlib.sha256).digest())


def _grants_field(may_trigger: tuple[str, ...]) -> str:
    return _b64(json.dumps(sorted(set(may_trigger))).encode()) if may_trigger else "-"


def pool_token(operator_token: str, pool: str, may_trigger: tuple[str, ...] = ()) -> str:
    """The token of the workers of `pool`, allowed to trigger the deployments `may_trigger`."""
    grants = _grants_field(tuple(may_trigger))
    return f"{POOL_TOKEN_PREFIX}.{pool}.{grants}.{_mac(operator_token, 'pool', pool, grants)}"


def run_token(pool_token_: str, flow_run_id: str) -> str:
    """The token of the flow process of `flow_run_id`, derived from its worker's pool token."""
    prefix, pool, grants, _ = pool_token_.split(".")
    if prefix != POOL_TOKEN_PREFIX:
        raise ValueError("run tokens are derived from a pool token")
    run = _b64(flow_run_id.encode())
    return f"{RUN_TOKEN_PREFIX}.{pool}.{grants}.{run}.{_mac(pool_token_, 'run', run)}"


def _grants(field: str) -> tuple[str, ...] | None:
    if field == "-":
        return ()
    try:
        grants = json.loads(_unb64(field))
    except ValueError:
        return None
    if not isinstance(grants, list) or not all(isinstance(g, str) for g in grants):
        return None
    return tuple(grants)


def identify(token: str, operator_token: str) -> TokenScope | None:
    """Whom `token` speaks for on a server whose operator token is `operator_token`, or None
    when it is no valid token there. Constant-time comparisons throughout."""
    parts = token.split(".")
    if parts[0] == POOL_TOKEN_PREFIX and len(parts) == 4:
        _, pool, grants_field, _ = parts
        grants = _grants(grants_field)
        if grants is None:
            return None
        expected = pool_token(operator_token, pool, grants)
        if hmac.compare_digest(expected.encode(), token.encode()):
            return TokenScope("worker", pool=pool, may_trigger=grants)
        return None
    if parts[0] == RUN_TOKEN_PREFIX and len(parts) == 5:
        _, pool, grants_field, run, _ = parts
        grants = _grants(grants_field)
        if grants is None:
            return None
        try:
            flow_run_id = _unb64(run).decode()
        except ValueError:
            return None
        expected = run_token(pool_token(operator_token, pool, grants), flow_run_id)
        if hmac.compare_digest(expected.encode(), token.encode()):
            return TokenScope("flow-process", pool=pool, flow_run_id=flow_run_id,
                              may_trigger=grants)
        return None
    if hmac.compare_digest(token.encode(), operator_token.encode()):
        return TokenScope("operator")
    return None


def token_scope_unverified(token: str) -> TokenScope:
    """What a token claims to be, without checking it (a client choosing its routes)."""
    parts = token.split(".")
    if parts[0] == POOL_TOKEN_PREFIX and len(parts) == 4:
        return TokenScope("worker", pool=parts[1], may_trigger=_grants(parts[2]) or ())
    if parts[0] == RUN_TOKEN_PREFIX and len(parts) == 5:
        return TokenScope("flow-process", pool=parts[1])
    return TokenScope("operator")


def sqs_credentials(token: str) -> tuple[str, str]:
    """(access key, secret key) a worker signs its SQS calls with: the access key says which
    token the secret is (the server derives that token again to check the signature)."""
    if token.startswith(POOL_TOKEN_PREFIX + "."):
        return token.rsplit(".", 1)[0], token
    return OPERATOR_ACCESS_KEY, token


def token_for_sqs_access_key(access_key: str, operator_token: str) -> tuple[str, str | None]:
    """(secret, pool) for a SigV4 access key: the operator's token, or a pool's token."""
    parts = access_key.split(".")
    if parts[0] == POOL_TOKEN_PREFIX and len(parts) == 3:
        grants = _grants(parts[2])
        if grants is not None:
            return pool_token(operator_token, parts[1], grants), parts[1]
    return operator_token, None
