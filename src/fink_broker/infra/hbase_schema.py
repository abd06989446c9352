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
    schema_key,
)

_WRITTEN = column(INDEX_FAMILY, "last_written").encode()
_VERSION = column(INDEX_FAMILY, "broker_version").encode()


def record_schema(
    connection, tables: ArchiveTables, broker_version: str, types: Mapping[str, str], digest: str
) -> None:
    """Write (or refresh) the schema row of ``broker_version`` and this column set."""
    cells = {column(SCHEMA_FAMILY, name).encode(): dtype.encode() for name, dtype in types.items()}
    cells[_VERSION] = broker_version.encode()
    cells[_WRITTEN] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds").encode()
    key = schema_key(broker_version, digest)
    connection.table(tables.name(TableKind.SCHEMA)).put(key.encode(), cells)


def read_schemas(connection, tables: ArchiveTables) -> list[dict[str, object]]:
    """Every schema row, oldest write first: version, last write time and column types."""
    out = []
    prefix = f"{SCHEMA_FAMILY}:".encode()
    for key, cells in connection.table(tables.name(TableKind.SCHEMA)).scan():
        out.append(
            {
                "key": key.decode(),
                "broker_version": cells.get(_VERSION, b"").decode(),
                "last_written": cells.get(_WRITTEN, b"").decode(),
                "types": {
                    k[len(prefix) :].decode(): v.decode()
                    for k, v in cells.items()
                    if k.startswith(prefix)
                },
            }
        )
    return sorted(out, key=lambda row: str(row["last_written"]))


def merged_types(schemas: list[dict[str, object]]) -> dict[str, str]:
    """``family:qualifier`` -> Spark type over all schema rows; the latest write wins."""
    types: dict[str, str] = {}
    for row in schemas:
        types.update(row["types"])  # type: ignore[arg-type]
    return types
