"""Turning plain data into a config and back: :func:`from_dict` (pydantic's first error as one
line naming the dotted key), :func:`json_schema`, :func:`to_dict` and :func:`config_hash`."""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import types
import typing
from typing import Annotated, Any, Literal, TypeVar

import annotated_types
from pydantic import TypeAdapter, ValidationError

from awsaa.errors import AWSAAError

T = TypeVar("T")


class ConfigError(AWSAAError, ValueError):
    """A config that cannot be used; the message names the key. (A ValueError too: raised in a
    config's ``__post_init__``, pydantic reports it with the section's path.)"""


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise ConfigError(message)


# ----------------------------------------------------------------------------- pydantic's errors


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Annotated:
        return _type_name(typing.get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    if origin is Literal:
        return _choices(typing.get_args(tp))
    if tp is type(None):
        return "null"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(tp, str(tp))


def _choices(values: tuple[Any, ...]) -> str:
    names = [str(v) for v in values]
    return " or ".join(names) if len(names) <= 2 else "one of " + ", ".join(names)


def _field_at(cls: Any, loc: list[str]) -> tuple[Any, Any]:
    """(the dataclass that holds the field at ``loc``, that field's pydantic FieldInfo or None)."""
    owner, info = cls, None
    for part in loc:
        fields = getattr(owner, "__pydantic_fields__", None)
        if fields is None or part not in fields:
            return owner, info
        info = fields[part]
        inner = _unwrap(info.annotation)
        if dataclasses.is_dataclass(inner):
            owner = inner
    return owner, info


def _field_names(cls: Any, loc: list[str]) -> list[str]:
    """The parts of ``loc`` that name fields, from the start (the rest: a union's branch tag)."""
    owner, out = cls, []
    for part in loc:
        fields = getattr(owner, "__pydantic_fields__", None)
        if fields is None or part not in fields:
            break
        out.append(part)
        owner = _unwrap(fields[part].annotation)
    return out


def _branches(tp: Any) -> tuple[Any, ...]:
    """The branches of a union (inside ``Annotated``), else ``(tp,)``."""
    while typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    return typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else (tp,)


def _is_union(tp: Any) -> bool:
    return len([b for b in _branches(tp) if b is not type(None)]) > 1


def _describe(tp: Any) -> str:
    """What a union field takes, each branch with its bounds: ``an integer >= 1 or a number in (0, 1)``."""
    parts = []
    for branch in _branches(tp):
        bounds = _bounds(branch, None)
        parts.append(_type_name(branch) + (f" {_range(bounds)}" if bounds else ""))
    return " or ".join(parts)


def _unwrap(tp: Any) -> Any:
    """The dataclass inside ``X | None`` / ``Annotated[X, ...]``, else ``tp``."""
    origin = typing.get_origin(tp)
    if origin is Annotated:
        return _unwrap(typing.get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            if dataclasses.is_dataclass(_unwrap(arg)):
                return _unwrap(arg)
    return tp


def _bounds(tp: Any, info: Any) -> dict[str, Any]:
    """Every numeric bound on a field (``ge``, ``gt``, ``le``, ``lt``), wherever it is declared."""
    out: dict[str, Any] = {}
    metadata = list(info.metadata) if info is not None else []
    stack = [tp]
    while stack:
        t = stack.pop()
        if typing.get_origin(t) is Annotated:
            stack.append(typing.get_args(t)[0])
            metadata += list(typing.get_args(t)[1:])
        elif typing.get_origin(t) in (typing.Union, types.UnionType):
            stack.extend(typing.get_args(t))
    for m in metadata:
        for name in ("ge", "gt", "le", "lt"):
            if isinstance(m, getattr(annotated_types, name.capitalize())):
                out[name] = getattr(m, name)
        for sub in getattr(m, "metadata", []):  # a FieldInfo inside Annotated
            for name in ("ge", "gt", "le", "lt"):
                if isinstance(sub, getattr(annotated_types, name.capitalize())):
                    out[name] = getattr(sub, name)
    return out


def _range(b: dict[str, Any]) -> str:
    lo = f"[{b['ge']}" if "ge" in b else f"({b['gt']}" if "gt" in b else None
    hi = f"{b['le']}]" if "le" in b else f"{b['lt']})" if "lt" in b else None
    if lo and hi:
        return f"in {lo}, {hi}"
    if lo:
        return f">= {b['ge']}" if "ge" in b else f"> {b['gt']}"
    return f"<= {b['le']}" if "le" in b else f"< {b['lt']}"


def _explain(cls: Any, err: Any) -> str:
    """One line for pydantic's error ``err`` on config class ``cls``."""
    loc = [str(x) for x in err["loc"]]
    kind, value, ctx = err["type"], err["input"], err.get("ctx") or {}
    if kind == "value_error" and isinstance(ctx.get("error"), ConfigError):
        return ".".join([*loc, ""]) + str(ctx["error"])
    if kind in ("unexpected_keyword_argument", "extra_forbidden"):
        owner, _ = _field_at(cls, loc[:-1])
        known = list(getattr(owner, "__pydantic_fields__", {}))
        close = difflib.get_close_matches(loc[-1], known, n=1)
        hint = f" (did you mean {'.'.join([*loc[:-1], close[0]])}?)" if close else ""
        return f"unknown key {'.'.join(loc)}{hint}"
    if kind in ("missing", "missing_argument"):
        return f"missing required key {'.'.join(loc)}"
    names = _field_names(cls, loc)
    _, info = _field_at(cls, loc)
    if info is not None and _is_union(info.annotation) and len(names) < len(loc):
        # a value no branch of a union took: pydantic names the branch it tried first
        # (val_size.constrained-int); say what the field takes
        return f"{'.'.join(names)} must be {_describe(info.annotation)}, got {value!r}"
    index = ""
    while loc and loc[-1].isdigit():  # an item of a list: the list's field, the item's type
        index = f"[{loc.pop()}]" + index
    key = ".".join(loc) + index or "the config"
    owner, info = _field_at(cls, loc)
    tp = info.annotation if info is not None else cls
    if index:
        tp = typing.get_args(_unwrap(tp))[0]
        info = None
    if kind in ("dataclass_type", "dataclass_exact_type", "dict_type", "model_type"):
        return f"{key} must be a mapping, got {type(value).__name__}"
    if kind == "finite_number":
        return f"{key} must be a finite number, got {value}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        return f"{key} must be {_range(_bounds(tp, info))}, got {value}"
    if kind == "literal_error":
        return f"{key} must be {_type_name(tp)}, got {value!r}"
    if kind == "too_short" or kind == "too_long":
        return f"{key} must hold {ctx.get('min_length', ctx.get('max_length'))} values, got {value!r}"
    return f"{key} must be {_type_name(tp)}, got {value!r}"


# ----------------------------------------------------------------------------- data to config and back


def from_dict(cls: type[T], data: Any, prefix: str = "") -> T:
    """Build config ``cls`` from plain data, checking keys, types and values (pydantic); the
    first problem is one :class:`ConfigError` line naming the dotted key."""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'the config'} must be a mapping, got {type(data).__name__}")
    try:
        return _adapter(cls).validate_python(data)
    except ValidationError as e:
        raise ConfigError(prefix + _explain(cls, e.errors(include_url=False)[0])) from None


_ADAPTERS: dict[Any, TypeAdapter] = {}


def _adapter(cls: Any) -> TypeAdapter:
    if cls not in _ADAPTERS:
        _ADAPTERS[cls] = TypeAdapter(cls)
    return _ADAPTERS[cls]


def json_schema(cls: Any) -> dict[str, Any]:
    """The JSON schema of config ``cls`` (editors validate YAML against it)."""
    return _adapter(cls).json_schema(mode="validation")


def to_dict(obj: Any) -> dict[str, Any]:
    return dataclasses.asdict(obj)


def config_hash(obj: Any) -> str:
    """A stable hash of a config's content (sha256 of its canonical JSON), 16 hex digits."""
    data = obj if isinstance(obj, dict) else to_dict(obj)
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
