"""Check flow parameters against a deployment's `parameter_schema` (a JSON Schema).

The SDK builds that schema from the flow function's signature with pydantic, so this covers the
keywords pydantic emits for parameters: type, enum, const, properties, required,
additionalProperties, items, prefixItems, anyOf, oneOf, allOf, local $ref ($defs/definitions),
min/max (Length, Items, imum). Unknown keywords (title, default, format, description ...) are
ignored, as JSON Schema does. pydantic validates models, not JSON Schema documents, hence this
small validator instead of a dependency.

Secrets: a value `{"$secret": "<name>"}` is a reference to a secret in the user's secret store
(`sluice.models.secrets`); the worker reads the secret's value into the flow's parameter. A
reference is taken only where the schema describes a secret (`writeOnly`, or `format:
password`: what pydantic emits for `SecretStr`), and is checked there as the string it stands
for: anywhere else (a `str` parameter, one without a schema, a deployment without a schema)
whoever triggers a run could have the worker read any secret its role can read into a value
the flow shows or sends on, unmasked. A secret parameter only takes a reference (or null): a
plain value would be stored, so it is refused, naming the fix.
"""

from __future__ import annotations

from typing import Any

from sluice.exceptions import ValidationError
from sluice.models import SECRET_MASK, is_secret_name, secret_reference_name

_JSON_TYPE_CHECKS = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    # JSON has one number type: 3.0 is an integer, and booleans are never numbers.
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool))
    or (isinstance(v, float) and v.is_integer()),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}

Location = tuple[str | int, ...]

#: Why a secret reference is refused where the schema describes no secret.
NOT_A_SECRET_PARAMETER = (
    'takes no secret reference ({"$secret": ...}): only parameters typed pydantic.SecretStr '
    "do (the worker would otherwise hand the secret's value to the flow unmasked); type the "
    "parameter SecretStr and deploy again, or pass a plain value")


def validate_parameters(parameters: dict[str, Any], schema: dict[str, Any]) -> None:
    """Raise `ValidationError` naming every parameter that does not match `schema`.

    An empty schema accepts anything but secret references (it names no secret parameter).
    `details` is a list of `{"loc": [...], "msg": ...}` with `loc` starting at "parameters".
    """
    try:
        errors = schema_errors(parameters, schema, root=schema, loc=("parameters",))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        # A schema stored before it was checked, or a keyword used in a way this validator
        # does not know: the caller's request is not at fault, but it cannot be checked either.
        raise ValidationError(
            f"the parameter_schema cannot be applied: {exc!r}",
            details=[{"loc": ["parameter_schema"], "msg": repr(exc)}],
        ) from None
    if errors:
        first = errors[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ValidationError(f"{where}: {first['msg']}", details=errors)


def check_schema_usable(schema: dict[str, Any]) -> None:
    """Raise `ValidationError` unless `schema` can describe a flow's parameters: it is an object
    schema and every `$ref` in it points inside it."""
    if not schema:
        return
    declared = schema.get("type")
    if declared is not None and declared != "object":
        raise ValidationError(
            "parameter_schema must describe an object (the flow's keyword arguments)",
            details=[{"loc": ["parameter_schema", "type"], "msg": f"is {declared!r}"}],
        )
    for ref in _refs(schema):
        try:
            _resolve(ref, schema)
        except (KeyError, TypeError, ValueError, AttributeError):
            raise ValidationError(
                f"parameter_schema has a $ref that points nowhere: {ref!r}",
                details=[{"loc": ["parameter_schema"], "msg": f"unresolvable $ref {ref!r}"}],
            ) from None


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [ref for child in node.values() for ref in _refs(child)]
    if isinstance(node, list):
        return [ref for child in node for ref in _refs(child)]
    return []


def schema_errors(
    value: Any, schema: dict[str, Any] | bool, *, root: dict[str, Any], loc: Location
) -> list[dict[str, Any]]:
    """Every mismatch between `value` and `schema` as `{"loc": [...], "msg": ...}` dicts."""
    reference = secret_reference_name(value)
    if reference is not None and not isinstance(schema, bool) and "$ref" in schema:
        schema = _resolve(schema["$ref"], root)
    if reference is not None and not _is_secret(schema, root):
        return [_error(loc, NOT_A_SECRET_PARAMETER)]
    if schema is True:
        return []
    if schema is False:
        return [_error(loc, "is not allowed")]
    if not isinstance(schema, dict):
        raise TypeError(f"a schema must be an object or a boolean, got {type(schema).__name__}")
    if "$ref" in schema:
        return schema_errors(value, _resolve(schema["$ref"], root), root=root, loc=loc)
    if reference is not None:
        if not is_secret_name(reference):
            return [_error(loc, 'a secret reference is {"$secret": "<name>"} with a name of '
                                "letters, digits and _.-/")]
        value = _ReferencedSecret(SECRET_MASK)  # checked as the string it stands for
    elif value is not None and not isinstance(value, _ReferencedSecret) and _is_secret(
            schema, root):
        return [_error(loc, 'is a secret: its value is never stored; pass a reference '
                            '{"$secret": "<name>"} to a secret created with `sluice secret '
                            'set <name>`')]

    errors: list[dict[str, Any]] = []
    declared = schema.get("type")
    if declared is not None:
        allowed = declared if isinstance(declared, list) else [declared]
        if not any(_JSON_TYPE_CHECKS[name](value) for name in allowed):
            return [_error(loc, f"must be of type {' or '.join(allowed)}, got {_json_type(value)}")]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(_error(loc, f"must be one of {schema['enum']!r}"))
    if "const" in schema and value != schema["const"]:
        errors.append(_error(loc, f"must be {schema['const']!r}"))
    errors += _combinator_errors(value, schema, root, loc)
    if isinstance(value, dict):
        errors += _object_errors(value, schema, root, loc)
    if isinstance(value, list):
        errors += _array_errors(value, schema, root, loc)
    errors += _bound_errors(value, schema, loc)
    return errors


def _combinator_errors(
    value: Any, schema: dict[str, Any], root: dict[str, Any], loc: Location
) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = []
    for sub in schema.get("allOf", []):
        errors += schema_errors(value, sub, root=root, loc=loc)
    if "anyOf" in schema:
        if not any(not schema_errors(value, s, root=root, loc=loc) for s in schema["anyOf"]):
            errors.append(_error(loc, "does not match any of the allowed forms"))
    if "oneOf" in schema:
        matches = sum(1 for s in schema["oneOf"] if not schema_errors(value, s, root=root, loc=loc))
        if matches != 1:
            errors.append(_error(loc, f"must match exactly one allowed form, matches {matches}"))
    return errors


def _object_errors(
    value: dict[str, Any], schema: dict[str, Any], root: dict[str, Any], loc: Location
) -> list[dict[str, Any]]:
    errors = [
        _error((*loc, name), "is required")
        for name in schema.get("required", [])
        if name not in value
    ]
    properties: dict[str, Any] = schema.get("properties", {})
    extra_schema = schema.get("additionalProperties", True)
    for name, item in value.items():
        if name in properties:
            errors += schema_errors(item, properties[name], root=root, loc=(*loc, name))
        elif extra_schema is False:
            errors.append(_error((*loc, name), "is not an accepted parameter"))
        else:
            errors += schema_errors(item, extra_schema, root=root, loc=(*loc, name))
    return errors


def _array_errors(
    value: list[Any], schema: dict[str, Any], root: dict[str, Any], loc: Location
) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = []
    positional: list[Any] = schema.get("prefixItems", [])
    for index, item in enumerate(value):
        item_schema = positional[index] if index < len(positional) else schema.get("items", True)
        errors += schema_errors(item, item_schema, root=root, loc=(*loc, index))
    return errors


def _bound_errors(value: Any, schema: dict[str, Any], loc: Location) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = []
    if _JSON_TYPE_CHECKS["number"](value):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(_error(loc, f"must be >= {schema['minimum']}"))
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(_error(loc, f"must be <= {schema['maximum']}"))
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            errors.append(_error(loc, f"must be > {schema['exclusiveMinimum']}"))
        if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
            errors.append(_error(loc, f"must be < {schema['exclusiveMaximum']}"))
    sized = isinstance(value, (str, list))
    kind = "characters" if isinstance(value, str) else "items"
    low, high = ("minLength", "maxLength") if isinstance(value, str) else ("minItems", "maxItems")
    if sized and low in schema and len(value) < schema[low]:
        errors.append(_error(loc, f"must have at least {schema[low]} {kind}"))
    if sized and high in schema and len(value) > schema[high]:
        errors.append(_error(loc, f"must have at most {schema[high]} {kind}"))
    return errors


class _ReferencedSecret(str):
    """The stand-in of a secret reference while its schema (and any anyOf form) is checked."""


def _is_secret(schema: dict[str, Any] | bool, root: dict[str, Any], depth: int = 0) -> bool:
    """Whether the schema describes a secret (pydantic's SecretStr/SecretBytes: writeOnly,
    format password), also as one form of an anyOf/oneOf (an Optional secret)."""
    if not isinstance(schema, dict) or depth > 8:
        return False
    if "$ref" in schema:
        return _is_secret(_resolve(schema["$ref"], root), root, depth + 1)
    if schema.get("writeOnly") is True or schema.get("format") == "password":
        return True
    return any(_is_secret(sub, root, depth + 1)
               for key in ("anyOf", "oneOf", "allOf") for sub in schema.get(key, []))


def _resolve(ref: str, root: dict[str, Any]) -> dict[str, Any] | bool:
    if not ref.startswith("#/"):
        raise ValueError(f"only local $ref are supported, got {ref!r}")
    node: Any = root
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _json_type(value: Any) -> str:
    for name in ("null", "boolean", "integer", "number", "string", "array", "object"):
        if _JSON_TYPE_CHECKS[name](value):
            return name
    return type(value).__name__


def _error(loc: Location, msg: str) -> dict[str, Any]:
    return {"loc": list(loc), "msg": msg}
