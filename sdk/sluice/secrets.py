"""`sluice.secret(name)`: a secret's value, read at run time from the user's own secret store.

* AWS control plane (an `aws` profile or SLUICE_KIND=aws): SSM Parameter Store
  (`GetParameter` with decryption: SecureString parameters), falling back to Secrets Manager
  (`GetSecretValue`, the SecretString) when no parameter has that name. The worker's IAM role
  needs `ssm:GetParameter` (and `kms:Decrypt` for a customer key) or
  `secretsmanager:GetSecretValue` on the secrets it reads.
* Embedded control plane, or none: files under `SLUICE_HOME/secrets/<name>` (directory 0700,
  files 0600), written by `sluice secret set NAME`.

Values are cached in the process for `CACHE_TTL_SECONDS` (so a flow reading a secret in a loop
makes one call) and registered with `sluice.redaction`: they are masked in log lines and state
messages before those leave the process.

Deployment parameters typed `SecretStr` are passed as references, `{"$secret": "<name>"}`
(`sluice.models.secret_reference`): the control plane stores the reference, never the value,
and the worker's flow process resolves it here (`resolve_references`).
"""

from __future__ import annotations

import os
import threading
import time
import types
import typing
from pathlib import Path
from typing import Any, Protocol

from pydantic import SecretStr

from . import redaction
from .exceptions import ConfigurationError, SecretNotFound, SluiceError
from .models.secrets import is_secret_name, secret_reference_name

#: How long a value read from the store is reused in this process.
CACHE_TTL_SECONDS = 60.0


class SecretStore(Protocol):
    def get(self, name: str) -> str | None: ...

    def set(self, name: str, value: str) -> None: ...

    def delete(self, name: str) -> bool: ...

    def describe(self) -> str: ...


def check_name(name: object) -> str:
    if not is_secret_name(name):
        raise ConfigurationError(
            f"{name!r} is not a secret name: use letters, digits and _.-/ (at most 512 "
            "characters), e.g. 'db-password' or '/prod/warehouse/password'")
    return name  # type: ignore[return-value]


class LocalSecretStore:
    """Secrets as files under a directory (the embedded control plane's machine)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def describe(self) -> str:
        return f"the local secret store {self.root}"

    def _path(self, name: str) -> Path:
        return self.root.joinpath(*check_name(name).strip("/").split("/"))

    def get(self, name: str) -> str | None:
        try:
            return self._path(name).read_text(encoding="utf-8")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    def set(self, name: str, value: str) -> None:
        path = self._path(name)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.root, 0o700)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(value)
        os.replace(tmp, path)

    def delete(self, name: str) -> bool:
        try:
            self._path(name).unlink()
            return True
        except FileNotFoundError:
            return False

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.relative_to(self.root).as_posix() for p in self.root.rglob("*")
                      if p.is_file() and not p.name.startswith("."))


class AwsSecretStore:
    """SSM Parameter Store (SecureString), then Secrets Manager, in the user's account."""

    def __init__(self, region: str | None = None, session: Any = None) -> None:
        import boto3

        self.session = session or boto3.session.Session(region_name=region)
        self.region = region or self.session.region_name
        self._ssm: Any = None
        self._secretsmanager: Any = None

    def describe(self) -> str:
        return f"SSM Parameter Store or Secrets Manager ({self.region})"

    @property
    def ssm(self) -> Any:
        if self._ssm is None:
            self._ssm = self.session.client("ssm", region_name=self.region)
        return self._ssm

    @property
    def secretsmanager(self) -> Any:
        if self._secretsmanager is None:
            self._secretsmanager = self.session.client("secretsmanager",
                                                       region_name=self.region)
        return self._secretsmanager

    def get(self, name: str) -> str | None:
        from botocore.exceptions import ClientError

        check_name(name)
        try:
            return self.ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
        except ClientError as exc:
            if _code(exc) not in ("ParameterNotFound", "ValidationException"):
                raise _aws_error(name, exc) from None
        try:
            answer = self.secretsmanager.get_secret_value(SecretId=name)
        except ClientError as exc:
            if _code(exc) == "ResourceNotFoundException":
                return None
            raise _aws_error(name, exc) from None
        if "SecretString" in answer:
            return answer["SecretString"]
        return answer["SecretBinary"].decode("utf-8")

    def set(self, name: str, value: str) -> None:
        check_name(name)
        self.ssm.put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True)

    def delete(self, name: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.ssm.delete_parameter(Name=check_name(name))
            return True
        except ClientError as exc:
            if _code(exc) == "ParameterNotFound":
                return False
            raise _aws_error(name, exc) from None


def _code(exc: Any) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def _aws_error(name: str, exc: Any) -> SluiceError:
    return SluiceError(f"reading secret {name!r} failed: {_code(exc)}: "
                       f"{exc.response.get('Error', {}).get('Message', exc)}")


def secret_store(profile: str | None = None) -> SecretStore:
    """The store of the configured control plane: AWS for an aws profile, else the local one."""
    from .profiles import resolve_connection
    from .settings import get_settings

    connection = resolve_connection(profile=profile)
    if connection is not None and connection.kind == "aws":
        return AwsSecretStore(connection.region)
    return LocalSecretStore(get_settings().home / "secrets")


_cache: dict[tuple[str, str], tuple[str, float]] = {}
_cache_lock = threading.Lock()


def secret(name: str, *, store: SecretStore | None = None) -> str:
    """The value of the secret `name` (cached for a minute; masked in this process's logs and
    states from now on). Raises `SecretNotFound` when the store has no such secret.

        password = sluice.secret("warehouse/password")
    """
    check_name(name)
    store = store or secret_store()
    key = (store.describe(), name)
    now = time.monotonic()
    with _cache_lock:
        hit = _cache.get(key)
    if hit is not None and hit[1] > now:
        return hit[0]
    value = store.get(name)
    if value is None:
        raise SecretNotFound(f"no secret {name!r} in {store.describe()}; create it with "
                             f"`sluice secret set {name}`")
    redaction.register(value)
    with _cache_lock:
        _cache[key] = (value, now + CACHE_TTL_SECONDS)
    return value


def resolve_references(parameters: dict[str, Any], *, store: SecretStore | None = None,
                       flow: Any = None) -> dict[str, Any]:
    """Parameters with every `{"$secret": name}` replaced by the secret's value (the worker's
    flow process, before the flow validates them), as a `pydantic.SecretStr`.

    Only a parameter typed `SecretStr` may take a reference (the control plane refuses the
    others, 422); this is the second line. The value is never a plain string: a `SecretStr`
    parameter takes it as is, a `str` one refuses it (the run fails before the flow starts),
    and an untyped one gets the masked object. With `flow`, a reference for a parameter that is
    not typed `SecretStr` is refused before any secret is read (`ConfigurationError`)."""
    if flow is not None:
        allowed = secret_parameter_names(flow)
        for key, value in parameters.items():
            if secret_reference_name(value) is not None and key not in allowed:
                raise ConfigurationError(
                    f"parameter {key!r} is given a secret reference but flow "
                    f"{getattr(flow, 'name', flow)!r} does not type it pydantic.SecretStr; no "
                    "secret was read (type the parameter SecretStr, or pass a plain value)")
    resolved = dict(parameters)
    for key, value in parameters.items():
        name = secret_reference_name(value)
        if name is not None:
            resolved[key] = SecretStr(secret(name, store=store))
    return resolved


def secret_parameter_names(flow: Any) -> frozenset[str]:
    """The parameters of `flow` typed `SecretStr` (or `SecretStr | None`, `Annotated[...]`)."""
    try:
        hints = typing.get_type_hints(flow.fn, include_extras=True)
    except Exception:  # unresolvable forward references: no parameter is known to be secret
        return frozenset()
    return frozenset(name for name in flow.signature.parameters
                     if _is_secret_type(hints.get(name)))


def _is_secret_type(annotation: Any, depth: int = 0) -> bool:
    if annotation is SecretStr:
        return True
    if depth > 4:
        return False
    return any(_is_secret_type(arg, depth + 1) for arg in typing.get_args(annotation)
               if typing.get_origin(annotation) in (typing.Union, types.UnionType,
                                                    typing.Annotated))


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()
