"""What flow and task options have in common: validation that names the option and the fix."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, field_validator
from pydantic import ValidationError as PydanticValidationError

from .exceptions import ConfigurationError
from .models.names import check_name
from .models.bounds import (
    MAX_CACHE_EXPIRATION_SECONDS,
    MAX_FLOW_WORKERS,
    MAX_RETRIES,
    MAX_RETRY_DELAY_SECONDS,
    MAX_RETRY_JITTER_FACTOR,
    MAX_TIMEOUT_SECONDS,
)

Hook = Callable[..., Any]


class Options(BaseModel):
    """Base of the frozen option models: one definition of every option, validated on use."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    #: Option name -> a correct example, shown in error messages.
    examples: ClassVar[dict[str, str]] = {}

    @classmethod
    def build(cls, decorator: str, **values: Any):
        """Validate `values`, turning pydantic's errors into one message that names the fix."""
        try:
            return cls(**values)
        except PydanticValidationError as exc:
            raise ConfigurationError(_explain(decorator, cls, exc), details=exc.errors(
                include_url=False, include_context=False, include_input=False)) from None

    def replace(self, decorator: str, **changes: Any):
        unknown = set(changes) - set(type(self).model_fields)
        if unknown:
            raise ConfigurationError(
                f"{decorator}.with_options() got unknown option(s) {sorted(unknown)}; "
                f"valid options are {sorted(type(self).model_fields)}"
            )
        return type(self).build(decorator, **{**self.model_dump_raw(), **changes})

    def model_dump_raw(self) -> dict[str, Any]:
        """The options as given (callables and tuples kept), for building a modified copy."""
        return {name: getattr(self, name) for name in type(self).model_fields}


class RunOptions(Options):
    """Validators the options of flows and tasks share (each class declares its own fields)."""

    @field_validator("tags", mode="before", check_fields=False)
    @classmethod
    def _tags(cls, value: Any) -> tuple[str, ...]:
        return as_tags(value)

    @field_validator("on_completion", "on_failure", "on_crashed", "on_cancellation",
                     "on_running", mode="before", check_fields=False)
    @classmethod
    def _hooks(cls, value: Any) -> tuple[Hook, ...]:
        return as_hooks("hook", value)

    @field_validator("flow_run_name", "task_run_name", mode="before", check_fields=False)
    @classmethod
    def _run_name(cls, value: Any) -> Any:
        if value is None or callable(value) or (isinstance(value, str) and value):
            return value
        raise ValueError("must be a template string over the parameters ('etl-{day}') or a "
                         "callable returning the name")

    # Bounds shared by flows and tasks (`sluice.models.bounds`): run after each class's own
    # type checks, so the value is already a number (or a list of numbers, or a callable).

    @field_validator("retries", check_fields=False)
    @classmethod
    def _retries_bound(cls, value: Any) -> Any:
        if isinstance(value, int) and value > MAX_RETRIES:
            raise ValueError(f"must be at most {MAX_RETRIES} (sluice.models.MAX_RETRIES); a "
                             "run that keeps failing that often needs fixing, not retrying")
        return value

    @field_validator("retry_delay_seconds", check_fields=False)
    @classmethod
    def _retry_delay_bound(cls, value: Any) -> Any:
        delays = value if isinstance(value, list) else [value] if not callable(value) else []
        for delay in delays:
            check_seconds(delay, MAX_RETRY_DELAY_SECONDS, "MAX_RETRY_DELAY_SECONDS",
                          "7 days; wait longer with a schedule")
        return value

    @field_validator("timeout_seconds", check_fields=False)
    @classmethod
    def _timeout_bound(cls, value: Any) -> Any:
        if value is not None:
            check_seconds(value, MAX_TIMEOUT_SECONDS, "MAX_TIMEOUT_SECONDS", "30 days")
        return value

    @field_validator("retry_jitter_factor", check_fields=False)
    @classmethod
    def _jitter_bound(cls, value: Any) -> Any:
        if value is not None:
            check_seconds(value, MAX_RETRY_JITTER_FACTOR, "MAX_RETRY_JITTER_FACTOR", "",
                          unit="")
        return value

    @field_validator("max_workers", check_fields=False)
    @classmethod
    def _workers_bound(cls, value: Any) -> Any:
        if isinstance(value, int) and value > MAX_FLOW_WORKERS:
            raise ValueError(f"must be at most {MAX_FLOW_WORKERS} (sluice.models.MAX_FLOW_WORKERS)"
                             "; fan out wider with the Dask task runner or subflows")
        return value

    @field_validator("cache_expiration", check_fields=False)
    @classmethod
    def _expiration_bound(cls, value: Any) -> Any:
        if value is not None:
            check_seconds(value.total_seconds(), MAX_CACHE_EXPIRATION_SECONDS,
                          "MAX_CACHE_EXPIRATION_SECONDS",
                          "ten years; leave it unset for a cache that never expires")
        return value

    @field_validator("result_storage", check_fields=False)
    @classmethod
    def _storage(cls, value: Any) -> Any:
        if value is None:
            return None
        from .engine.results import storage_from

        try:
            return storage_from(value)
        except Exception as exc:  # ConfigurationError, or a value that is not a path at all
            raise ValueError(str(exc)) from None


def _explain(decorator: str, cls: type[Options], exc: PydanticValidationError) -> str:
    lines = []
    for error in exc.errors(include_url=False):
        reason = error["msg"].removeprefix("Value error, ")
        if not error["loc"]:  # a rule across options: the reason names them itself
            lines.append(f"{decorator}: {reason}")
            continue
        option = str(error["loc"][0])
        if error["type"] == "extra_forbidden":
            lines.append(f"{decorator}: `{option}` is not an option of {decorator}; valid "
                         f"options are {sorted(cls.model_fields)}")
            continue
        example = cls.examples.get(option)
        hint = f"; for example {decorator}({example})" if example else ""
        lines.append(f"{decorator}: option `{option}` {reason[:1].lower()}{reason[1:]} "
                     f"(got {error.get('input')!r}){hint}")
    return "\n".join(lines)


def check_seconds(value: Any, maximum: float, name: str, meaning: str, *,
                  unit: str = " seconds") -> None:
    """Refuse a number that is not finite or over `maximum` (named `name` in sluice.models)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        if value > maximum:
            why = f" ({meaning})" if meaning else ""
            bound = int(maximum) if float(maximum).is_integer() else maximum
            raise ValueError(f"must be at most {bound}{unit}{why}; the bound is "
                             f"sluice.models.{name}")


def as_hooks(option: str, value: Any) -> tuple[Hook, ...]:
    """Accept one callable or a sequence of callables; refuse anything else by name."""
    if value is None:
        return ()
    hooks = (value,) if callable(value) else tuple(value) if isinstance(value, Sequence) else None
    if hooks is None or not all(callable(h) for h in hooks):
        raise ValueError(
            f"must be a callable or a list of callables taking (flow_or_task, run, state)"
        )
    return hooks


def as_tags(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    tags = tuple(value)
    if not all(isinstance(t, str) and t for t in tags):
        raise ValueError("must be a list of non-empty strings")
    for tag in tags:
        check_name(tag, "tag")  # the rule every tag follows (`sluice.models.names`)
    return tags
