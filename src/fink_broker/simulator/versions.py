"""Alert records re-shaped into another schema version of their survey, for test streams.

``fink simulator --schema-version V`` replays a folder of alerts as if the survey had
published them in version ``V``: how tests make ZTF 4.02 and Rubin v7/v10/v11 alerts from the
3.3 and v9 alerts of ``../shared/datasim``. A field both versions have keeps its value (by
name, or by a declared rename such as Rubin's ``alertId`` -> ``diaSourceId``); a field the
target has and the source lacks gets its default, or null where it may be null, or else the
zero of its type, and its path is reported, so a test knows which values are made up.

>>> target = {"type": "record", "name": "a", "fields": [
...     {"name": "id", "type": "long"}, {"name": "x", "type": ["null", "double"]},
...     {"name": "n", "type": "int"}, {"name": "k", "type": "int", "default": 7}]}
>>> convert({"alertId": 5, "x": 1.5, "dropped": 1}, target, {"id": ("alertId",)})
({'id': 5, 'x': 1.5, 'n': 0, 'k': 7}, ['n'])
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: zero values of the primitive types, for required fields the source lacks
_ZERO: dict[str, Any] = {
    "null": None,
    "boolean": False,
    "int": 0,
    "long": 0,
    "float": 0.0,
    "double": 0.0,
    "bytes": b"",
    "string": "",
}
_PYTHON: dict[str, tuple[type, ...]] = {
    "boolean": (bool,),
    "int": (int,),
    "long": (int,),
    "float": (float, int),
    "double": (float, int),
    "bytes": (bytes, bytearray),
    "string": (str,),
}


def convert(
    record: Mapping[str, Any],
    target: Mapping[str, Any],
    renamed: Mapping[str, tuple[str, ...]] | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """``record`` shaped as the ``target`` record schema: (new record, paths filled in).

    ``renamed`` maps a target field's dotted path to the names the source may use for it.
    """
    filled: list[str] = []
    named: dict[str, Any] = {}
    out = _record(record, dict(target), "", dict(renamed or {}), named, filled)
    return out, filled


def _record(
    value: Mapping[str, Any],
    schema: dict[str, Any],
    prefix: str,
    renamed: dict[str, tuple[str, ...]],
    named: dict[str, Any],
    filled: list[str],
) -> dict[str, Any]:
    _register(schema, named)
    out: dict[str, Any] = {}
    for field in schema["fields"]:
        path = f"{prefix}{field['name']}"
        names = (field["name"], *renamed.get(path, ()))
        source = next((n for n in names if n in value), None)
        if source is None:
            out[field["name"]] = _missing(field, path, named, filled)
        else:
            out[field["name"]] = _value(
                value[source], field["type"], f"{path}.", renamed, named, filled, path
            )
    return out


def _register(schema: dict[str, Any], named: dict[str, Any]) -> None:
    name = schema.get("name", "")
    named[name] = named[name.rsplit(".", 1)[-1]] = schema
    if schema.get("namespace") and "." not in name:
        named[f"{schema['namespace']}.{name}"] = schema


def _resolve(kind: Any, named: dict[str, Any]) -> Any:
    """A type with references to named types replaced by their definitions."""
    if isinstance(kind, str) and kind not in _ZERO:
        return named.get(kind, named.get(kind.rsplit(".", 1)[-1], kind))
    if isinstance(kind, dict) and isinstance(kind.get("type"), dict | list):
        return kind["type"]
    return kind


def _missing(field: Mapping[str, Any], path: str, named: dict[str, Any], filled: list[str]) -> Any:
    """The value of a target field the source does not have."""
    if "default" in field:
        return field["default"]
    kind = _resolve(field["type"], named)
    if isinstance(kind, list) and "null" in kind:
        return None
    filled.append(path)
    return _zero(kind, named)


def _zero(kind: Any, named: dict[str, Any]) -> Any:
    kind = _resolve(kind, named)
    if isinstance(kind, list):
        return _zero(kind[0], named)
    if isinstance(kind, str):
        return _ZERO[kind]
    if kind["type"] == "record":
        _register(kind, named)
        return {f["name"]: f.get("default", _zero(f["type"], named)) for f in kind["fields"]}
    if kind["type"] == "array":
        return []
    if kind["type"] == "map":
        return {}
    if kind["type"] == "enum":
        return kind["symbols"][0]
    if kind["type"] == "fixed":
        return bytes(kind["size"])
    return _ZERO.get(kind["type"])


def _value(
    value: Any,
    kind: Any,
    prefix: str,
    renamed: dict[str, tuple[str, ...]],
    named: dict[str, Any],
    filled: list[str],
    path: str,
) -> Any:
    """A source value shaped as the target type ``kind``."""
    kind = _resolve(kind, named)
    if isinstance(kind, list):
        if value is None:
            if "null" in kind:
                return None
            filled.append(path)
            return _zero(kind, named)
        return _value(value, _branch(value, kind, named), prefix, renamed, named, filled, path)
    if value is None:
        filled.append(path)
        return _zero(kind, named)
    if isinstance(kind, dict):
        if kind["type"] == "record":
            return _record(value, kind, prefix, renamed, named, filled)
        if kind["type"] == "array":
            return [_value(v, kind["items"], prefix, renamed, named, filled, path) for v in value]
        if kind["type"] == "map":
            return {
                k: _value(v, kind["values"], prefix, renamed, named, filled, path)
                for k, v in value.items()
            }
        return value
    if kind in ("float", "double") and isinstance(value, int):
        return float(value)
    return value


def _branch(value: Any, union: list[Any], named: dict[str, Any]) -> Any:
    """The union branch a Python value belongs to (the first non-null one otherwise)."""
    for branch in union:
        kind = _resolve(branch, named)
        if isinstance(kind, str) and kind in _PYTHON:
            if isinstance(value, _PYTHON[kind]) and not (
                isinstance(value, bool) and kind != "boolean"
            ):
                return branch
        elif isinstance(kind, dict):
            shape = {"record": dict, "map": dict, "array": list, "enum": str}.get(kind["type"])
            if shape is not None and isinstance(value, shape):
                return branch
    return next(b for b in union if b != "null")
