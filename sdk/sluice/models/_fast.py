"""Building trusted models without validation, for the engine's hot path.

`BaseModel.model_construct` still applies defaults and runs post-init hooks per call, which
costs ~10 us; the engine builds several models per task run from values it made itself, so
it sets the instance slots directly (the same slots model_construct fills).
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)
_setattr = object.__setattr__


def construct(cls: type[M], fields: dict[str, Any], private: dict[str, Any] | None = None) -> M:
    """An instance of `cls` holding `fields` as given; every field of `cls` must be present."""
    obj = cls.__new__(cls)
    _setattr(obj, "__dict__", fields)
    _setattr(obj, "__pydantic_fields_set__", set(fields))
    _setattr(obj, "__pydantic_extra__", None)
    _setattr(obj, "__pydantic_private__", private)
    return obj
