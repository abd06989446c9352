"""Schema rows of the HBase archive: which columns, of which type, each version wrote.

HBase stores bytes; the archive writer records, for every broker version and column set it
writes, one row of the ``schema`` table whose cells map ``family:qualifier`` to the Spark
type of the column. Readers (the API) merge those rows to decode any cell, including cells
of alerts archived by an older broker version whose columns have since changed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from fink_broker.tables.layout import (
    INDEX_FAMILY,
    SCHEMA_FAMILY,
    ArchiveTables,
    TableKind,
    column,
)

_WRITTEN = column(INDEX_FAMILY, "last_written").encode()
_VERSION = column(INDEX_FAMILY, "broker_version").encode()
#: the record schema of main-table cell ``i:alert`` is stored as ``r:i:alert``
_RECORD_PREFIX = f"{INDEX_FAMILY}:"


def record_schema(
    connection,
    tables: ArchiveTables,
    key: str,
    broker_version: str,
    types: Mapping[str, str],
    record_schemas: Mapping[str, str],
) -> None:
    """Write (or refresh) the schema row ``key``: column types and record schemas."""
    cells = {column(SCHEMA_FAMILY, name).encode(): dtype.encode() for name, dtype in types.items()}
    cells.update({f"{_RECORD_PREFIX}{c}".encode(): s.encode() for c, s in record_schemas.items()})
    cells[_VERSION] = broker_version.encode()
    cells[_WRITTEN] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds").encode()
    connection.table(tables.name(TableKind.SCHEMA)).put(key.encode(), cells)


def _parse(key: bytes, cells: Mapping[bytes, bytes]) -> dict[str, object]:
    types_prefix = f"{SCHEMA_FAMILY}:".encode()
    records = {
        k.decode()[len(_RECORD_PREFIX) :]: v.decode()
        for k, v in cells.items()
        if k.startswith(_RECORD_PREFIX.encode()) and k.count(b":") == 2
    }
    return {
        "key": key.decode(),
        "broker_version": cells.get(_VERSION, b"").decode(),
        "last_written": cells.get(_WRITTEN, b"").decode(),
        "types": {
            k[len(types_prefix) :].decode(): v.decode()
            for k, v in cells.items()
            if k.startswith(types_prefix)
        },
        "records": records,
    }


def read_schemas(connection, tables: ArchiveTables) -> list[dict[str, object]]:
    """Every schema row, oldest write first: key, version, last write, column types and
    the Avro schema of each packed cell (``records``)."""
    rows = connection.table(tables.name(TableKind.SCHEMA)).scan()
    return sorted((_parse(k, c) for k, c in rows), key=lambda row: str(row["last_written"]))


def merged_types(schemas: list[dict[str, object]]) -> dict[str, str]:
    """``family:qualifier`` -> Spark type over all schema rows; the latest write wins."""
    types: dict[str, str] = {}
    for row in schemas:
        types.update(row["types"])  # type: ignore[arg-type]
    return types
