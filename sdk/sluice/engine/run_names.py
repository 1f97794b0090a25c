"""`flow_run_name` / `task_run_name`: a template over the parameters, or a callable.

    @flow(flow_run_name="etl-{day}")                      # "etl-2024-06-01"
    @task(task_run_name=lambda parameters: f"load-{parameters['table']}")
    @task(task_run_name=make_name)                         # make_name() with no arguments

Templates are checked when the decorator is applied (every `{field}` must be a parameter);
the rendered name must be a valid run name (`sluice.models.names`).
"""

from __future__ import annotations

import inspect
import string
from collections.abc import Callable, Mapping
from typing import Any

from ..exceptions import ConfigurationError
from ..models.names import name_problem


def template_fields(template: str) -> list[str]:
    """The parameter names a template refers to (`{day}`, `{cfg.region}` -> `cfg`)."""
    fields = []
    for _, field, _, _ in string.Formatter().parse(template):
        if field is None:
            continue
        head = field.split(".", 1)[0].split("[", 1)[0]
        if not head or head.isdigit():
            raise ValueError(f"uses a positional field {{{field}}}; name a parameter instead, "
                             "e.g. 'etl-{day}'")
        fields.append(head)
    return fields


def check_template(option: str, decorator: str, template: Any,
                   signature: inspect.Signature) -> None:
    """Refuse (ConfigurationError) a template naming something that is not a parameter."""
    if not isinstance(template, str):
        return
    params = signature.parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return  # any keyword may arrive
    try:
        fields = template_fields(template)
    except ValueError as exc:
        raise ConfigurationError(f"{decorator}: option `{option}` {exc} (got {template!r})"
                                 ) from None
    unknown = [f for f in fields if f not in params]
    if unknown:
        raise ConfigurationError(
            f"{decorator}: option `{option}` refers to {', '.join(unknown)}, which "
            f"{'is not a parameter' if len(unknown) == 1 else 'are not parameters'} "
            f"(parameters: {', '.join(params) or 'none'}); use parameter names in braces, "
            f"e.g. {option}='run-{{{next(iter(params), 'day')}}}'"
        )


def render_run_name(option: str, spec: str | Callable[..., Any],
                    parameters: Mapping[str, Any]) -> str:
    """The run name `spec` gives for these parameters; ConfigurationError naming the fix when it
    cannot be rendered or is not a valid run name."""
    try:
        if isinstance(spec, str):
            name = spec.format(**parameters)
        elif _takes_parameters(spec):
            name = spec(dict(parameters))
        else:
            name = spec()
    except ConfigurationError:
        raise
    except Exception as exc:
        raise ConfigurationError(f"`{option}` could not be rendered: {type(exc).__name__}: "
                                 f"{exc}; fix the template or the function") from None
    if not isinstance(name, str):
        raise ConfigurationError(f"`{option}` must give a string, got {name!r}; return the name "
                                 "as a str")
    problem = name_problem(name, "run")
    if problem is not None:
        raise ConfigurationError(f"`{option}` gave an invalid name: {problem}")
    return name


def _takes_parameters(fn: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    required = [p for p in params.values() if p.default is inspect.Parameter.empty
                and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return bool(required) or any(p.kind is p.VAR_POSITIONAL for p in params.values())
