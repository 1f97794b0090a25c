"""Hashing values by VALUE, for cache keys: equal inputs give equal keys in any process, and
different inputs never share a key because of where they happen to live in memory.

Every value is encoded into tagged, length-prefixed bytes (so `["a,b"]` and `["a", "b"]` differ)
and hashed with SHA-256:

* None, bools, numbers, strings, bytes: their value, tagged with their type (`1`, `1.0` and
  `True` give three keys);
* lists, tuples, dicts, sets and frozensets: their items, recursively; dicts and sets sorted, so
  insertion order and string-hash randomisation do not matter;
* enums, pydantic models, dataclasses, named tuples and plain objects: their class and their
  fields (recursively);
* dates, times, decimals, UUIDs, paths: their `repr`, which is their value;
* functions: module, name, bytecode, constants, defaults and closure values; classes: their name;
* anything else: its pickle (by value; numpy arrays and data frames land here).

A value none of these can encode (a lock, an open file, a generator, an unpicklable object)
raises `HashError` naming where it sits: there is no fallback to `repr`, whose default form
carries an object's address and could hand one input another's cached value.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import decimal
import enum
import fractions
import hashlib
import pathlib
import pickle
import types
import uuid
from typing import Any

from pydantic import BaseModel

from ..exceptions import HashError

_REPR_TYPES = (_dt.datetime, _dt.date, _dt.time, _dt.timedelta, _dt.timezone, decimal.Decimal,
               fractions.Fraction, uuid.UUID, pathlib.PurePath, range, slice)


def stable_hash(value: Any, label: str = "value") -> str:
    """SHA-256 (hex) of `value` encoded by value; raises `HashError` naming the part (under
    `label`, e.g. `inputs['conn']`) that cannot be encoded."""
    out = bytearray()
    try:
        _encode(value, out, label, [])
    except RecursionError:
        raise HashError(f"cannot hash {label} by value: it is nested too deeply") from None
    return hashlib.sha256(out).hexdigest()


def _type_name(t: type) -> str:
    return f"{t.__module__}.{t.__qualname__}"


def _chunk(out: bytearray, tag: bytes, data: bytes) -> None:
    out += tag
    out += str(len(data)).encode()
    out += b":"
    out += data


def _encode(v: Any, out: bytearray, path: str, stack: list[int]) -> None:  # noqa: C901, PLR0912
    t = type(v)
    # Exact built-in atoms first: the common case, no isinstance chains.
    if v is None:
        out += b"N"
    elif t is bool:
        out += b"T" if v else b"F"
    elif t is int:
        _chunk(out, b"i", str(v).encode())
    elif t is float:
        _chunk(out, b"f", v.hex().encode())
    elif t is str:
        _chunk(out, b"s", v.encode("utf-8", "surrogatepass"))
    elif t is bytes:
        _chunk(out, b"b", v)
    elif isinstance(v, enum.Enum):
        _chunk(out, b"E", _type_name(t).encode())
        _encode(v.value, out, f"{path}.value", stack)
    elif isinstance(v, (bool, int, float, complex, str, bytes, bytearray, memoryview)):
        # Subclasses and the rarer atoms: their type, then their plain value.
        _chunk(out, b"a", _type_name(t).encode())
        if isinstance(v, (bytearray, memoryview)):
            _chunk(out, b"b", bytes(v))
        elif isinstance(v, str):
            _chunk(out, b"s", str.__str__(v).encode("utf-8", "surrogatepass"))
        else:
            _chunk(out, b"r", repr(complex(v) if isinstance(v, complex) else
                                   (float(v) if isinstance(v, float) else int(v))).encode())
    elif isinstance(v, _REPR_TYPES):
        _chunk(out, b"R", f"{_type_name(t)}:{v!r}".encode())
    elif isinstance(v, type):
        _chunk(out, b"C", _type_name(v).encode())
    else:
        _encode_container(v, t, out, path, stack)


def _encode_container(v: Any, t: type, out: bytearray, path: str, stack: list[int]) -> None:
    if id(v) in stack:  # a cycle: refer back to the enclosing container by depth
        _chunk(out, b"@", str(stack.index(id(v))).encode())
        return
    stack.append(id(v))
    try:
        if isinstance(v, (list, tuple)):
            _chunk(out, b"L" if isinstance(v, list) else b"U", _type_name(t).encode())
            _chunk(out, b"n", str(len(v)).encode())
            for i, item in enumerate(v):
                _encode(item, out, f"{path}[{i}]", stack)
        elif isinstance(v, dict):
            _chunk(out, b"M", _type_name(t).encode())
            _encode_mapping(v, out, path, stack)
        elif isinstance(v, (set, frozenset)):
            _chunk(out, b"S", _type_name(t).encode())
            parts = []
            for item in v:
                part = bytearray()
                _encode(item, part, f"{path}{{item}}", stack)
                parts.append(bytes(part))
            _chunk(out, b"n", str(len(parts)).encode())
            for part in sorted(parts):
                out += part
        elif isinstance(v, BaseModel):
            _chunk(out, b"P", _type_name(t).encode())
            fields = {name: getattr(v, name) for name in t.model_fields}
            fields.update(v.__pydantic_extra__ or {})
            _encode_mapping(fields, out, path, stack, attribute=True)
        elif dataclasses.is_dataclass(v):
            _chunk(out, b"D", _type_name(t).encode())
            fields = {f.name: getattr(v, f.name) for f in dataclasses.fields(v)}
            _encode_mapping(fields, out, path, stack, attribute=True)
        elif isinstance(v, (types.FunctionType, types.MethodType, types.CodeType)):
            _encode_function(v, out, path, stack)
        elif isinstance(v, (types.BuiltinFunctionType, types.ModuleType)):
            _chunk(out, b"B", f"{getattr(v, '__module__', '')}.{v.__qualname__}".encode()
                   if not isinstance(v, types.ModuleType) else v.__name__.encode())
        elif _plain_object(t) and hasattr(v, "__dict__"):
            _chunk(out, b"O", _type_name(t).encode())
            _encode_mapping(vars(v), out, path, stack, attribute=True)
        else:
            _encode_pickle(v, t, out, path)
    finally:
        stack.pop()


def _encode_mapping(mapping: dict[Any, Any], out: bytearray, path: str, stack: list[int], *,
                    attribute: bool = False) -> None:
    items = []
    for key, value in mapping.items():
        k = bytearray()
        _encode(key, k, f"{path} key {key!r}" if not attribute else path, stack)
        where = f"{path}.{key}" if attribute else f"{path}[{key!r}]"
        item = bytearray()
        _encode(value, item, where, stack)
        items.append((bytes(k), bytes(item)))
    _chunk(out, b"n", str(len(items)).encode())
    for k, item in sorted(items):
        out += k
        out += item


def _encode_function(v: Any, out: bytearray, path: str, stack: list[int]) -> None:
    if isinstance(v, types.MethodType):
        _chunk(out, b"m", b"")
        _encode(v.__self__, out, f"{path}.__self__", stack)
        _encode(v.__func__, out, path, stack)
        return
    if isinstance(v, types.CodeType):
        _chunk(out, b"K", v.co_code)
        _encode(v.co_consts, out, f"{path} constants", stack)
        _encode(v.co_names, out, f"{path} names", stack)
        return
    _chunk(out, b"F", f"{v.__module__}.{v.__qualname__}".encode())
    _encode(v.__code__, out, path, stack)
    _encode(v.__defaults__, out, f"{path} defaults", stack)
    _encode(v.__kwdefaults__, out, f"{path} defaults", stack)
    cells = tuple(c.cell_contents for c in v.__closure__ or ())
    _encode(cells, out, f"{path} closure", stack)


_IMMUTABLE_TYPE = 1 << 8  # Py_TPFLAGS_IMMUTABLETYPE: built-in and C extension types


def _plain_object(t: type) -> bool:
    """A class written in Python, all the way down, with no custom pickling: the instance's
    `__dict__` is its whole value (a C type, like an open file, keeps state outside it)."""
    return (t.__reduce_ex__ is object.__reduce_ex__ and t.__reduce__ is object.__reduce__
            and getattr(t, "__getstate__", None) is getattr(object, "__getstate__", None)
            and not any(b.__flags__ & _IMMUTABLE_TYPE for b in t.__mro__[:-1]))


def _encode_pickle(v: Any, t: type, out: bytearray, path: str) -> None:
    try:
        data = pickle.dumps(v, protocol=4)
    except Exception as exc:
        raise HashError(
            f"cannot hash {path} (a {_type_name(t)}) by value: {type(exc).__name__}: {exc}. "
            "Leave it out of the cache key (e.g. cache_policy=INPUTS - 'name'), or compute the "
            "key yourself with cache_key_fn"
        ) from None
    _chunk(out, b"p", _type_name(t).encode())
    _chunk(out, b"b", data)
