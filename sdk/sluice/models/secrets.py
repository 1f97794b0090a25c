"""Secret references: how a secret travels in flow parameters without its value.

A deployment run's parameter that is a secret (typed `pydantic.SecretStr`: JSON Schema
`writeOnly`) is given as `{"$secret": "<name>"}`, the name of a secret in the user's secret
store (`sluice secret set <name>`: SSM Parameter Store / Secrets Manager in AWS, files under
SLUICE_HOME/secrets locally). The control plane stores and shows the reference and refuses a
plain value for such a parameter; the worker's flow process reads the value at run time
(`sluice.secret`).
"""

from __future__ import annotations

import re
from typing import Any

SECRET_REFERENCE_KEY = "$secret"
#: What parameters and logs show instead of a secret value.
SECRET_MASK = "**********"
#: Secret names: letters, digits and `_.-/` (what SSM Parameter Store and Secrets Manager both
#: accept), at most 512 characters, no `..` segment.
SECRET_NAME_PATTERN = r"^/?[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*$"
_NAME = re.compile(SECRET_NAME_PATTERN)


def is_secret_name(name: object) -> bool:
    return (isinstance(name, str) and len(name) <= 512 and _NAME.match(name) is not None
            and ".." not in name.split("/"))


def secret_reference(name: str) -> dict[str, str]:
    """The parameter value that names the secret `name`."""
    return {SECRET_REFERENCE_KEY: name}


def secret_reference_name(value: Any) -> str | None:
    """The secret name if `value` is a reference (`{"$secret": name}`, nothing else in it)."""
    if isinstance(value, dict) and len(value) == 1 and SECRET_REFERENCE_KEY in value:
        name = value[SECRET_REFERENCE_KEY]
        return name if isinstance(name, str) else ""
    return None
