"""Templates of automation actions: jinja2 in its sandbox, over plain data only.

The context is `event` (the triggering event as JSON data), `automation` (id, name) and `now`
(ISO time). Everything is a dict or a string, so no Python object of the control plane is
reachable; the sandbox also refuses `__class__`-style attribute access, and an undefined name
is an error rather than an empty string (a typo must not post an empty alert).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateError
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


def render_value(value: Any, context: dict[str, Any], *, field: str) -> Any:
    """Strings rendered as templates, lists and dicts walked, other values kept."""
    if isinstance(value, str):
        return render(value, context, field=field)
    if isinstance(value, list):
        return [render_value(v, context, field=f"{field}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: render_value(v, context, field=f"{field}.{k}") for k, v in value.items()}
    return value
