"""Flow parameters: a pydantic model from the type hints, validation, and their stored form."""

from __future__ import annotations

import inspect
import json
import typing
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import to_jsonable_python

from ..exceptions import ParameterValidationError
from ..models import MAX_PARAMETERS_BYTES

if TYPE_CHECKING:
    from ..flows import Flow

_VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


def parameters_model(flow: Flow[Any, Any]) -> type[BaseModel]:
    try:
        hints = typing.get_type_hints(flow.fn, include_extras=True)
    except Exception:  # unresolvable forward references: validate what we can
        hints = {}
    from ..docstrings import parameter_descriptions

    described = parameter_descriptions(flow.fn)  # Args/Parameters of the docstring
    fields: dict[str, Any] = {}
    for name, param in flow.signature.parameters.items():
        if param.kind in _VARIADIC:
            continue
        annotation = hints.get(name, Any)
        default = ... if param.default is inspect.Parameter.empty else param.default
        if name in described:
            default = Field(default, description=described[name])
        fields[name] = (annotation, default)
    return create_model(  # type: ignore[call-overload]
        f"{flow.name}-parameters",
        __config__=ConfigDict(arbitrary_types_allowed=True),
        **fields,
    )


def parameter_schema(flow: Flow[Any, Any]) -> dict[str, Any]:
    """The JSON schema of the flow's parameters. Unless the flow takes `**kwargs` it names
    every accepted parameter (`additionalProperties: false`), so the control plane refuses a
    run with an unknown parameter (a 422 naming it) instead of the run crashing on the worker."""
    try:
        schema = flow.parameters_model.model_json_schema()
    except Exception:  # a type pydantic cannot describe: accept any object
        return {"type": "object"}
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD
               for p in flow.signature.parameters.values()):
        schema["additionalProperties"] = False
    return schema


def bind(flow: Flow[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
         ) -> inspect.BoundArguments:
    """Bind call arguments to parameter names, with defaults applied. Raises TypeError as a plain
    call would when the arguments do not fit the signature."""
    bound = flow.signature.bind(*args, **kwargs)
    bound.apply_defaults()
    return bound


def validate(flow: Flow[Any, Any], bound: inspect.BoundArguments) -> None:
    """Coerce the bound arguments in place to the type hints; raise ParameterValidationError
    listing every invalid field."""
    values = {name: value for name, value in bound.arguments.items()
              if flow.signature.parameters[name].kind not in _VARIADIC}
    try:
        model = flow.parameters_model.model_validate(values)
    except PydanticValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False)
        lines = [f"- {'.'.join(str(p) for p in e['loc'])}: {e['msg']} (got {e.get('input')!r})"
                 for e in errors]
        raise ParameterValidationError(
            f"Flow {flow.name!r} got invalid parameters:\n" + "\n".join(lines),
            details=[{"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
                     for e in errors],
        ) from None
    for name in values:
        bound.arguments[name] = getattr(model, name)


SECRET_MASK = "**********"


def _secret_names(flow: Flow[Any, Any]) -> frozenset[str]:
    """Parameters typed as secrets: masked even when their value failed validation."""
    cached = getattr(flow, "_secret_parameters", None)
    if cached is None:
        try:
            fields = flow.parameters_model.model_fields
        except Exception:
            fields = {}
        cached = frozenset(name for name, info in fields.items() if "Secret" in repr(info.annotation))
        flow._secret_parameters = cached  # type: ignore[attr-defined]
    return cached


def stored_form(flow: Flow[Any, Any], arguments: dict[str, Any]) -> dict[str, Any]:
    """The parameters as the control plane stores them: JSON, secrets masked, size-capped."""
    secrets = _secret_names(flow) if flow.options.validate_parameters else frozenset()
    masked = {k: SECRET_MASK if k in secrets else v for k, v in arguments.items()}
    jsonable = to_jsonable_python(masked, fallback=repr)
    encoded = json.dumps(jsonable, default=repr)
    if len(encoded.encode()) <= MAX_PARAMETERS_BYTES:
        return jsonable
    return {"__truncated__": f"parameters are {len(encoded.encode())} bytes; over the "
                             f"{MAX_PARAMETERS_BYTES}-byte limit, so they are not stored"}
