"""The archive's reader schema: one survey schema version, every field optional.

Surveys upgrade their alert schemas (ZTF 3.3 -> 4.02, Rubin v7 -> v11). The broker archives
every version into one layout by reading each record with Avro's schema resolution: the
*writer* schema is the one the alert was encoded with, the *reader* schema is the archive's.
Avro's rules match fields by name (or alias), drop the writer's extra fields and give reader
fields the writer lacks their default. A published schema declares many fields without a
default (ZTF ``candidate.jd``, Rubin ``diaSource.visit``), so an older writer that lacks one
could not resolve at all; :func:`optional_reader` makes every field of every record optional
(a union with ``null``, default ``null`` unless the field had a default of its own). A field a
version lacks then reads as null, and one archive spans versions without a field being
mapped by hand.

Renamed fields are declared as Avro aliases on the reader (``aliases``), the one place
where a survey says that two names hold the same value.

>>> writer = {"type": "record", "name": "a", "fields": [
...     {"name": "id", "type": "long"},
...     {"name": "n", "type": ["int", "null"], "default": 3},
...     {"name": "s", "type": {"type": "record", "name": "s", "fields": [
...         {"name": "x", "type": "double"}]}}]}
>>> reader = optional_reader(writer, {"id": ("alertId",)})
>>> [f["type"] for f in reader["fields"]][:2], reader["fields"][0]["aliases"]
([['null', 'long'], ['int', 'null']], ['alertId'])
>>> reader["fields"][2]["type"][1]["fields"][0]
{'name': 'x', 'type': ['null', 'double'], 'default': None}
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

#: a field's dotted path in the reader (``diaSource.psfFlux``) -> names it had before
Aliases = Mapping[str, tuple[str, ...]]


def optional_reader(
    schema: Mapping[str, Any],
    aliases: Aliases | None = None,
    type_aliases: Mapping[str, tuple[str, ...]] | None = None,
    namespaces: tuple[str, ...] = (),
) -> dict[str, Any]:
    """A copy of ``schema`` in which every record field is optional (see module doc).

    Avro applies a field's aliases only inside a record whose full name matches the
    reader's (``Schema.applyAliases``), and a survey that puts its version in the namespace
    (Rubin: ``lsst.v9_0.diaSource``, ``lsst.v11_1.diaSource``) changes every full name. So
    each record type is given, as aliases, its name in each of the older ``namespaces``, and
    ``type_aliases`` (short name -> older short names) adds renamed record types.
    """
    out = copy.deepcopy(dict(schema))
    _optional_fields(out, "", dict(aliases or {}))
    if namespaces:
        _alias_types(out, dict(type_aliases or {}), namespaces)
    return out


def _alias_types(
    node: Any, type_aliases: dict[str, tuple[str, ...]], namespaces: tuple[str, ...]
) -> None:
    """Give every record type its older full names as aliases, in place."""
    if isinstance(node, list):
        for branch in node:
            _alias_types(branch, type_aliases, namespaces)
    elif isinstance(node, dict):
        kind = node.get("type")
        if kind == "record":
            short = node["name"].rsplit(".", 1)[-1]
            names = (short, *type_aliases.get(short, ()))
            older = {f"{space}.{name}" for space in namespaces for name in names}
            node["aliases"] = sorted({*node.get("aliases", ()), *older})
            for field in node["fields"]:
                _alias_types(field["type"], type_aliases, namespaces)
        elif kind == "array":
            _alias_types(node["items"], type_aliases, namespaces)
        elif kind == "map":
            _alias_types(node["values"], type_aliases, namespaces)
        elif isinstance(kind, dict | list):
            _alias_types(kind, type_aliases, namespaces)


def _optional_fields(node: Any, prefix: str, aliases: dict[str, tuple[str, ...]]) -> None:
    """Make the fields of every record under ``node`` optional, in place."""
    if isinstance(node, list):  # a union
        for branch in node:
            _optional_fields(branch, prefix, aliases)
        return
    if not isinstance(node, dict):  # a primitive or a reference to a named type
        return
    kind = node.get("type")
    if kind == "array":
        _optional_fields(node["items"], prefix, aliases)
    elif kind == "map":
        _optional_fields(node["values"], prefix, aliases)
    elif kind == "record":
        for field in node["fields"]:
            path = f"{prefix}{field['name']}"
            _optional_fields(field["type"], f"{path}.", aliases)
            field["type"], default = _optional_type(field["type"], field.get("default", None))
            field["default"] = default
            if path in aliases:
                field["aliases"] = sorted({*field.get("aliases", ()), *aliases[path]})
    elif isinstance(kind, dict | list):  # {"type": {...}}: a nested type definition
        _optional_fields(kind, prefix, aliases)


def _optional_type(kind: Any, default: Any) -> tuple[Any, Any]:
    """The field type as a union with null, and its default.

    Avro requires a union field's default to match the union's *first* branch, so ``null``
    goes first unless the field keeps a non-null default of its own, which then stays valid
    with ``null`` last.
    """
    branches = list(kind) if isinstance(kind, list) else [kind]
    others = [b for b in branches if b != "null"]
    if not others:
        return "null", None
    if default is not None:
        return [*others, "null"], default
    return ["null", *others], None


def field_tree(schema: Any, _named: dict[str, tuple[Any, ...]] | None = None) -> tuple[Any, ...]:
    """The names of a schema's fields, nested, without types, nullability or namespaces.

    Two schemas with the same tree describe the same version of an alert even when one was
    rewritten by another tool (a container written by Spark names its records
    ``topLevelRecord`` and makes every field nullable).

    >>> a = {"type": "record", "name": "a", "namespace": "n", "fields": [
    ...     {"name": "x", "type": "long"},
    ...     {"name": "s", "type": ["null", {"type": "array", "items": {
    ...         "type": "record", "name": "i", "fields": [{"name": "y", "type": "int"}]}}]},
    ...     {"name": "t", "type": "n.i"}]}
    >>> field_tree(a)
    (('s', (('y', ()),)), ('t', (('y', ()),)), ('x', ()))
    """
    named = {} if _named is None else _named
    if isinstance(schema, str):
        return named.get(schema, named.get(schema.rsplit(".", 1)[-1], ()))
    if isinstance(schema, list):
        for branch in schema:
            tree = field_tree(branch, named)
            if tree:
                return tree
        return ()
    if not isinstance(schema, dict):
        return ()
    kind = schema.get("type")
    if kind == "record":
        tree = tuple(sorted((f["name"], field_tree(f["type"], named)) for f in schema["fields"]))
        name = schema.get("name", "")
        space = schema.get("namespace")
        named[name] = named[name.rsplit(".", 1)[-1]] = tree
        if space and "." not in name:
            named[f"{space}.{name}"] = tree
        return tree
    if kind == "array":
        return field_tree(schema["items"], named)
    if kind == "map":
        return field_tree(schema["values"], named)
    if isinstance(kind, dict | list):
        return field_tree(kind, named)
    return ()
