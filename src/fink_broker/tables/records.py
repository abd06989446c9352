"""The Avro records of main-table rows: decode them and name their values as columns.

A main-table row holds the survey's values in ``i:alert`` and Fink's in ``d:fink`` (Rubin:
``r:alert``, ``f:fink``), each one Avro record written by Spark's ``to_avro``, and in
``d:schema`` the key of the schema row that holds both record schemas. Rows written by
different broker versions may use different schemas; each row says which.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from typing import Any

import fastavro

from fink_broker.tables.layout import Families, column, flatten_survey


def parse_record_schemas(records: Mapping[str, str]) -> dict[str, Any]:
    """Cell name -> parsed Avro schema, from a schema row's ``records``."""
    return {cell: fastavro.parse_schema(json.loads(text)) for cell, text in records.items()}


def schema_of(cells: Mapping[bytes, bytes], families: Families) -> str | None:
    """The schema-row key a main-table row names, if it has one."""
    key = cells.get(families.schema_cell.encode())
    return key.decode() if key is not None else None


def _items(value: Any) -> Any:
    return value.items() if isinstance(value, dict) else None


def row_values(
    cells: Mapping[bytes, bytes],
    schemas: Mapping[str, Any],
    main_struct: str,
    families: Families,
) -> dict[str, Any]:
    """``family:qualifier`` -> value of one main-table row (the cells it has)."""
    out: dict[str, Any] = {}
    survey = cells.get(families.survey_record.encode())
    if survey is not None:
        alert = fastavro.schemaless_reader(io.BytesIO(survey), schemas[families.survey_record])
        flat = flatten_survey(alert.items(), main_struct, _items)
        out.update({column(families.survey, name): value for name, value in flat.items()})
    fink = cells.get(families.fink_record.encode())
    if fink is not None:
        values = fastavro.schemaless_reader(io.BytesIO(fink), schemas[families.fink_record])
        out.update({column(families.fink, name): value for name, value in values.items()})
    return out
