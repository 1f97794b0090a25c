"""Templates of automation actions: jinja2 in its sandbox, over plain data only.

The context is `event` (the triggering event as JSON data), `automation` (id, name) and `now`
(ISO time). Everything is a dict or a string, so no Python object of the control plane is
reachable; the sandbox also refuses `__class__`-style attribute access, and an undefined name
is an error rather than an empty string (a typo must not post an empty alert).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateError, Undefined
from jinja2.sandbox import SandboxedEnvironment


class TemplateFailed(ValueError):
    """A template of an action did not render; the message names the template and the fix."""


@lru_cache(maxsize=1)
def _environment() -> SandboxedEnvironment:
    return SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


def render(template: str, context: dict[str, Any], *, field: str) -> str:
    """`template` rendered with `context`; `TemplateFailed` names `field` on any error."""
    if "{" not in template:  # nothing to render: skip the parse
        return template
    try:
        return _environment().from_string(template).render(**context)
    except TemplateError as exc:
        raise TemplateFailed(
            f"template of {field} failed: {type(exc).__name__}: {exc}; templates see only "
            "event, automation and now, e.g. '{{ event.resource.id }}'") from None


#: A template that is one expression and nothing else: `{{ event.detail.size }}`.
_SINGLE_EXPRESSION = re.compile(r"^\{\{(?P<expression>(?:(?!\}\}|\{\{).)+)\}\}$", re.DOTALL)


def render_value(value: Any, context: dict[str, Any], *, field: str) -> Any:
    """Strings rendered as templates, lists and dicts walked, other values kept. A string that
    is a single expression keeps the expression's type (`'{{ event.detail.size }}'` gives the
    number, so an `int` parameter gets an int); any other template gives text."""
    if isinstance(value, str):
        single = _SINGLE_EXPRESSION.match(value.strip())
        if single is not None:
            return _evaluate(single.group("expression"), context, field=field)
        return render(value, context, field=field)
    if isinstance(value, list):
        return [render_value(v, context, field=f"{field}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: render_value(v, context, field=f"{field}.{k}") for k, v in value.items()}
    return value


def _evaluate(expression: str, context: dict[str, Any], *, field: str) -> Any:
    try:
        result = _environment().compile_expression(expression, undefined_to_none=False)(
            **context)
    except TemplateError as exc:
        raise TemplateFailed(
            f"template of {field} failed: {type(exc).__name__}: {exc}; templates see only "
            "event, automation and now, e.g. '{{ event.resource.id }}'") from None
    if isinstance(result, Undefined):  # StrictUndefined: touching it raises the clear error
        try:
            str(result)
        except TemplateError as exc:
            raise TemplateFailed(f"template of {field} failed: {type(exc).__name__}: {exc}; "
                                 "templates see only event, automation and now") from None
    return result
