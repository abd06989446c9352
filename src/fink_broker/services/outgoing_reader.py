"""Decoding of Fink's outgoing messages without Spark: the reader side of ``engine.outgoing``.

Each message carries its writer schema as JSON text in the key and the record as schemaless
Avro in the value (the fink-client convention), so a subscriber needs no schema registry.
Parsing a 20 kB schema costs more than decoding the alert it describes, and a topic carries
one schema per version, so parsed schemas are cached by key bytes.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import fastavro

from fink_broker.services.alert_display import UndecodableError, describe

#: distinct writer schemas kept parsed (one per topic and schema version in practice)
MAX_SCHEMAS = 64


@dataclass(frozen=True)
class WriterSchema:
    """The writer schema of a message: as sent in the key, and parsed by fastavro."""

    key: bytes
    name: str
    definition: dict[str, Any]
    parsed: Any


class OutgoingDecoder:
    """Decodes Fink's outgoing messages, parsing each distinct key (schema) only once.

    ``fallback`` (a schema dict, ``fink consume --schema``) decodes messages whose key is
    not a schema, e.g. from producers that put a version string in the key.
    """

    def __init__(self, fallback: Mapping[str, Any] | None = None) -> None:
        self._cache: dict[bytes, WriterSchema] = {}
        self._fallback = None if fallback is None else self._parse(b"", dict(fallback))

    @staticmethod
    def _parse(key: bytes, definition: dict[str, Any]) -> WriterSchema:
        parsed = fastavro.parse_schema(definition)
        name = str(definition.get("name", "alert"))
        return WriterSchema(key, name, definition, parsed)

    def schema_of(self, key: bytes | None) -> WriterSchema:
        """The writer schema a message key carries (or the fallback)."""
        key = key or b""
        found = self._cache.get(key)
        if found is not None:
            return found
        try:
            definition = json.loads(key)
            if not isinstance(definition, dict):
                raise TypeError("the key is JSON but not a schema object")
            found = self._parse(key, definition)
        except Exception as err:  # json, fastavro and type errors alike: not a schema
            if self._fallback is not None:
                return self._fallback
            raise UndecodableError(f"key is not an Avro schema ({describe(err)})") from err
        if len(self._cache) >= MAX_SCHEMAS:
            self._cache.pop(next(iter(self._cache)))  # oldest first
        self._cache[key] = found
        return found

    def decode(self, key: bytes | None, value: bytes | None) -> tuple[dict[str, Any], WriterSchema]:
        """``(record, writer schema)`` of one message, or :class:`UndecodableError`."""
        if not value:
            raise UndecodableError("empty message")
        schema = self.schema_of(key)
        buf = io.BytesIO(value)
        try:
            record = fastavro.schemaless_reader(buf, schema.parsed, None)
        except Exception as err:  # garbage fails in many ways inside fastavro
            raise UndecodableError(f"bad Avro body for {schema.name} ({describe(err)})") from err
        if buf.tell() != len(value):
            raise UndecodableError(f"{len(value) - buf.tell()} trailing bytes after the record")
        if not isinstance(record, dict):
            raise UndecodableError(f"{schema.name} is not a record schema")
        return record, schema
