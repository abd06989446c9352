"""The Avro records of main-table rows: decode them and name their values as columns.

A main-table row holds the survey's values in ``i:alert`` and Fink's in ``d:fink``, each
one Avro record written by Spark's ``to_avro``, and in ``d:schema`` the key of the schema
row that holds both record schemas. Rows written by different broker versions may use
different schemas; each row says which.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from typing import Any

import fastavro

from fink_broker.tables.layout import (
    FINK_FAMILY,
    FINK_RECORD,
    SCHEMA_CELL,
    SURVEY_FAMILY,
    SURVEY_RECORD,
    column,
    flatten_survey,
)

_SURVEY, _FINK, _SCHEMA = SURVEY_RECORD.encode(), FINK_RECORD.encode(), SCHEMA_CELL.encode()


def parse_record_schemas(records: Mapping[str, str]) -> dict[str, Any]:
    """Cell name -> parsed Avro schema, from a schema row's ``records``."""
    return {cell: fastavro.parse_schema(json.loads(text)) for cell, text in records.items()}


def schema_of(cells: Mapping[bytes, bytes]) -> str | None:
    """The schema-row key a main-table row names, if it has one."""
    key = cells.get(_SCHEMA)
    return key.decode() if key is not None else None


def _items(value: Any) -> Any:
    return value.items() if isinstance(value, dict) else None


def row_values(
    cells: Mapping[bytes, bytes], schemas: Mapping[str, Any], main_struct: str
) -> dict[str, Any]:
    """``family:qualifier`` -> value of one main-table row (the cells it has)."""
    out: dict[str, Any] = {}
    if _SURVEY in cells:
        alert = fastavro.schemaless_reader(io.BytesIO(cells[_SURVEY]), schemas[SURVEY_RECORD])
        flat = flatten_survey(alert.items(), main_struct, _items)
        out.update({column(SURVEY_FAMILY, name): value for name, value in flat.items()})
    if _FINK in cells:
        fink = fastavro.schemaless_reader(io.BytesIO(cells[_FINK]), schemas[FINK_RECORD])
        out.update({column(FINK_FAMILY, name): value for name, value in fink.items()})
    return out
