"""The parameter-schema validator against schemas pydantic builds from flow signatures."""

from __future__ import annotations

import enum

import pytest
from pydantic import BaseModel, TypeAdapter

from sluice.exceptions import ValidationError
from sluice_functions.service.parameter_schema import validate_parameters


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Window(BaseModel):
    days: int


def etl(day: str, n: int = 1, ratio: float = 0.5, color: Color = Color.RED,
        window: Window | None = None, pair: tuple[int, str] = (1, "a"),
        names: list[str] = [], dry_run: bool = False) -> None:  # noqa: B006
    ...


#: What the SDK stores as a deployment's parameter_schema: pydantic's schema of the signature.
SCHEMA = TypeAdapter(etl).json_schema()


def errors_of(parameters):
    try:
        validate_parameters(parameters, SCHEMA)
    except ValidationError as error:
        return [(".".join(map(str, e["loc"])), e["msg"]) for e in error.details]
    return []


@pytest.mark.parametrize(
    "parameters",
    [
        {"day": "mon"},
        {"day": "mon", "n": 3.0, "ratio": 2, "color": "blue", "window": {"days": 7},
         "pair": [2, "b"], "names": ["x", "y"], "dry_run": True},
        {"day": "mon", "window": None},
    ],
)
def test_parameters_that_fit_the_signature_pass(parameters):
    assert errors_of(parameters) == []


@pytest.mark.parametrize(
    "parameters, expected",
    [
        ({}, [("parameters.day", "is required")]),
        ({"day": 1}, [("parameters.day", "must be of type string, got integer")]),
        ({"day": "mon", "n": True}, [("parameters.n", "must be of type integer, got boolean")]),
        ({"day": "mon", "n": 1.5}, [("parameters.n", "must be of type integer, got number")]),
        ({"day": "mon", "color": "green"}, [("parameters.color", "must be one of ['red', 'blue']")]),
        ({"day": "mon", "window": {"days": "x"}},
         [("parameters.window", "does not match any of the allowed forms")]),
        ({"day": "mon", "pair": [1, 2]}, [("parameters.pair.1", "must be of type string, got integer")]),
        ({"day": "mon", "pair": [1]}, [("parameters.pair", "must have at least 2 items")]),
        ({"day": "mon", "names": ["a", 3]},
         [("parameters.names.1", "must be of type string, got integer")]),
        ({"day": "mon", "typo": 1}, [("parameters.typo", "is not an accepted parameter")]),
    ],
)
def test_parameters_that_do_not_fit_are_named_with_the_reason(parameters, expected):
    assert errors_of(parameters) == expected


def test_the_error_message_names_the_first_problem():
    with pytest.raises(ValidationError, match=r"^parameters\.day: is required$"):
        validate_parameters({}, SCHEMA)


def test_an_empty_schema_accepts_anything():
    validate_parameters({"anything": object()}, {})


def test_a_schema_the_validator_cannot_apply_is_a_validation_error_not_a_crash():
    with pytest.raises(ValidationError, match="cannot be applied"):
        validate_parameters({"x": 1}, {"properties": {"x": {"type": "decimal"}}})


@pytest.mark.parametrize(
    "schema, value, ok",
    [
        ({"minimum": 1, "maximum": 3}, 0, False),
        ({"minimum": 1, "maximum": 3}, 3, True),
        ({"exclusiveMaximum": 3}, 3, False),
        ({"maxLength": 2}, "abc", False),
        ({"oneOf": [{"type": "integer"}, {"type": "number"}]}, 1, False),  # matches both
        ({"oneOf": [{"type": "integer"}, {"type": "string"}]}, "x", True),
        ({"allOf": [{"type": "integer"}, {"minimum": 2}]}, 1, False),
        ({"const": "x"}, "x", True),
        ({"type": ["string", "null"]}, None, True),
    ],
)
def test_other_keywords(schema, value, ok):
    wrapped = {"type": "object", "properties": {"v": schema}}
    if ok:
        validate_parameters({"v": value}, wrapped)
    else:
        with pytest.raises(ValidationError):
            validate_parameters({"v": value}, wrapped)


#: What pydantic emits for `password: SecretStr, token: SecretStr | None = None, ...`.
SECRET_SCHEMA = {
    "type": "object", "required": ["password"],
    "properties": {
        "password": {"type": "string", "format": "password", "writeOnly": True},
        "token": {"anyOf": [{"type": "string", "format": "password", "writeOnly": True},
                            {"type": "null"}], "default": None},
        "day": {"type": "string"}, "n": {"type": "integer"}}}


@pytest.mark.parametrize("parameters", [
    {"password": {"$secret": "db-password"}},
    {"password": {"$secret": "/prod/db"}, "token": None},
    {"password": {"$secret": "a"}, "token": {"$secret": "b"}, "day": "mon"},
])
def test_secret_parameters_take_references(parameters):
    validate_parameters(parameters, SECRET_SCHEMA)


@pytest.mark.parametrize(("parameters", "where", "says"), [
    ({"password": "hunter2"}, "parameters.password", "is a secret"),
    ({"password": {"$secret": "a"}, "token": "raw"}, "parameters.token", "is a secret"),
    ({"password": {"$secret": "../x"}}, "parameters.password", "secret reference"),
    ({"password": {"$secret": 5}}, "parameters.password", "secret reference"),
    # Issue 13: a reference only where the schema is a secret (never a str or int parameter).
    ({"password": {"$secret": "a"}, "n": {"$secret": "b"}}, "parameters.n", "SecretStr"),
    ({"password": {"$secret": "a"}, "day": {"$secret": "c"}}, "parameters.day", "SecretStr"),
])
def test_plain_values_of_secret_parameters_are_refused(parameters, where, says):
    with pytest.raises(ValidationError) as raised:
        validate_parameters(parameters, SECRET_SCHEMA)
    assert raised.value.details[0]["loc"] == where.split(".") and says in raised.value.message
    assert "hunter2" not in raised.value.message
