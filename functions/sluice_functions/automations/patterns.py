"""EventBridge event patterns, evaluated here: the embedded server matches every recorded event
against deployments' `on_event` patterns, and the API re-matches an event EventBridge delivered
to find the deployments it was for. Same semantics as EventBridge for what is supported
(https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-create-pattern-operators.html):

* a pattern is an object; each key is a field of the event, its value either an object (the
  fields nested under it) or a non-empty list of matchers, any of which may match;
* matchers: exact values (string, number compared as numbers, true/false, null), `prefix`,
  `suffix`, `equals-ignore-case`, `wildcard` (`*` only), `anything-but` (a value, a list, or
  `{"prefix": ...}`/`{"suffix": ...}`), `exists` (true/false), `numeric` (`[">", 0, "<=", 5]`);
* an event field holding a list matches when any of its items does;
* a missing field matches only `{"exists": false}`; `$or` takes a list of alternative patterns.
"""

from __future__ import annotations

import fnmatch
import operator
import re
from collections.abc import Callable
from typing import Any

_MISSING = object()
_COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt, "<=": operator.le, "=": operator.eq, ">=": operator.ge, ">": operator.gt}
_OPERATORS = {"prefix", "suffix", "equals-ignore-case", "wildcard", "anything-but", "exists",
              "numeric"}
_HELP = ('e.g. {"source": ["aws.s3"], "detail": {"object": {"key": [{"prefix": "in/"}]}}}')


class PatternError(ValueError):
    """The pattern is not a usable event pattern; the message names the field and the fix."""


def check_pattern(pattern: Any, *, where: str = "pattern") -> None:
    """Raise `PatternError` unless `pattern` is an event pattern this module (and EventBridge)
    understands."""
    if not isinstance(pattern, dict) or not pattern:
        raise PatternError(f"{where} must be a non-empty JSON object of fields, {_HELP}")
    for key, value in pattern.items():
        field = f"{where}.{key}"
        if key == "$or":
            if not isinstance(value, list) or len(value) < 2:
                raise PatternError(f"{field} must list at least two alternative patterns")
            for index, alternative in enumerate(value):
                check_pattern(alternative, where=f"{field}[{index}]")
        elif isinstance(value, dict):
            check_pattern(value, where=field)
        elif isinstance(value, list) and value:
            for matcher in value:
                _check_matcher(matcher, field)
        else:
            raise PatternError(f"{field} must be a non-empty list of values to match (or an "
                               f"object of nested fields), {_HELP}")


def _check_matcher(matcher: Any, field: str) -> None:
    if not isinstance(matcher, dict):
        if isinstance(matcher, list):
            raise PatternError(f"{field}: lists do not nest; list the values side by side")
        return
    if len(matcher) != 1 or next(iter(matcher)) not in _OPERATORS:
        raise PatternError(f"{field}: unknown matcher {matcher!r}; use one of "
                           f"{sorted(_OPERATORS)}, e.g. {{\"prefix\": \"in/\"}}")
    name, argument = next(iter(matcher.items()))
    if name == "exists" and not isinstance(argument, bool):
        raise PatternError(f"{field}: exists takes true or false")
    if name == "numeric":
        pairs = argument if isinstance(argument, list) else []
        if not pairs or len(pairs) % 2 or not all(
                op in _COMPARISONS and _is_number(n) for op, n in zip(pairs[::2], pairs[1::2])):
            raise PatternError(f"{field}: numeric takes comparison and number pairs, e.g. "
                               '[">", 0, "<=", 5]')
    if name in ("prefix", "suffix", "equals-ignore-case", "wildcard") and \
            not isinstance(argument, (str, dict)):
        raise PatternError(f"{field}: {name} takes a string")


def matches(pattern: dict[str, Any], event: Any) -> bool:
    """Whether `event` (a JSON object) matches `pattern` (checked with `check_pattern`)."""
    if not isinstance(event, dict):
        return False
    for key, expected in pattern.items():
        if key == "$or":
            if not any(matches(alternative, event) for alternative in expected):
                return False
            continue
        value = event.get(key, _MISSING)
        if isinstance(expected, dict):
            if not matches(expected, value if isinstance(value, dict) else {}):
                return False
        elif not _field_matches(expected, value):
            return False
    return True


def _field_matches(matchers: list[Any], value: Any) -> bool:
    values = value if isinstance(value, list) else [value]
    if value is _MISSING or (isinstance(value, list) and not value):
        # Only "exists: false" matches a field that is absent (or an empty list, as EventBridge).
        return any(isinstance(m, dict) and m.get("exists") is False for m in matchers)
    return any(_one(matcher, item) for matcher in matchers for item in values)


def _one(matcher: Any, value: Any) -> bool:
    if not isinstance(matcher, dict):
        return _equal(matcher, value)
    name, argument = next(iter(matcher.items()))
    if name == "exists":
        return argument is True
    if name == "anything-but":
        return not _any_of(argument, value)
    if name == "numeric":
        if not _is_number(value):
            return False
        pairs = list(zip(argument[::2], argument[1::2]))
        return all(_COMPARISONS[op](float(value), float(limit)) for op, limit in pairs)
    if not isinstance(value, str):
        return False
    if name == "prefix":
        return _affix(argument, value, str.startswith)
    if name == "suffix":
        return _affix(argument, value, str.endswith)
    if name == "equals-ignore-case":
        return value.casefold() == str(argument).casefold()
    if name == "wildcard":
        # EventBridge's wildcard knows `*` only: escape what fnmatch would also interpret.
        escaped = re.sub(r"([\[\]?])", r"[\1]", str(argument))
        return fnmatch.fnmatchcase(value, escaped)
    return False


def _affix(argument: Any, value: str, test: Callable[[str, str], bool]) -> bool:
    if isinstance(argument, dict):  # {"prefix": {"equals-ignore-case": "In/"}}
        wanted = str(argument.get("equals-ignore-case", ""))
        return test(value.casefold(), wanted.casefold())
    return test(value, str(argument))


def _any_of(argument: Any, value: Any) -> bool:
    """What `anything-but` excludes: a value, a list of values, or a prefix/suffix matcher."""
    if isinstance(argument, dict):
        return _one(argument, value)
    if isinstance(argument, list):
        return any(_equal(item, value) for item in argument)
    return _equal(argument, value)


def _equal(expected: Any, value: Any) -> bool:
    if isinstance(expected, bool) or isinstance(value, bool):
        return expected is value
    if _is_number(expected) and _is_number(value):
        return float(expected) == float(value)
    return expected == value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
