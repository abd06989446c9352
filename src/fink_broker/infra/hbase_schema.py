"""Schema rows of the HBase archive: which columns, of which type, each version wrote.

HBase stores bytes; the archive writer records, for every broker version and column set it
writes, one row of the ``schema`` table whose cells map ``family:qualifier`` to the Spark
type of the column. Readers (the API) merge those rows to decode any cell, including cells
of alerts archived by an older broker version whose columns have since changed.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping

from fink_broker.errors import FinkError
from fink_broker.tables.layout import (
    INDEX_FAMILY,
    LAYOUT_VERSION,
    SCHEMA_FAMILY,
    ArchiveTables,
    TableKind,
    column,
)

#: the cell of a schema row that says when it was last written
WRITTEN_CELL = column(INDEX_FAMILY, "last_written").encode()
_VERSION = column(INDEX_FAMILY, "broker_version").encode()
#: the layout version (row keys, families) the rows of this schema were written with
_LAYOUT = column(INDEX_FAMILY, "layout").encode()
#: the field types of the history lists the ``upper`` table holds items of, as JSON
_HISTORY = column(INDEX_FAMILY, "history").encode()
#: the record schema of main-table cell ``i:alert`` is stored as ``r:i:alert``
_RECORD_PREFIX = f"{INDEX_FAMILY}:"


def record_schema(
    connection,
    tables: ArchiveTables,
    key: str,
    broker_version: str,
    types: Mapping[str, str],
    record_schemas: Mapping[str, str],
    history_types: Mapping[str, Mapping[str, str]] | None = None,
) -> None:
    """Write (or refresh) the schema row ``key``: column types, record schemas and the
    field types of the history lists."""
    cells = {column(SCHEMA_FAMILY, name).encode(): dtype.encode() for name, dtype in types.items()}
    cells.update({f"{_RECORD_PREFIX}{c}".encode(): s.encode() for c, s in record_schemas.items()})
    cells[_VERSION] = broker_version.encode()
    cells[_LAYOUT] = str(LAYOUT_VERSION).encode()
    cells[_HISTORY] = json.dumps(history_types or {}, sort_keys=True).encode()
    cells[WRITTEN_CELL] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds").encode()
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
        "last_written": cells.get(WRITTEN_CELL, b"").decode(),
        "types": {
            k[len(types_prefix) :].decode(): v.decode()
            for k, v in cells.items()
            if k.startswith(types_prefix)
        },
        "records": records,
        "history": json.loads(cells.get(_HISTORY, b"{}")),
        # rows written before the layout was recorded are layout 1 ('_' separator)
        "layout": int(cells.get(_LAYOUT, b"1")),
    }


def read_schemas(connection, tables: ArchiveTables) -> list[dict[str, object]]:
    """Every schema row, oldest write first: key, version, last write, column types and
    the Avro schema of each packed cell (``records``)."""
    rows = connection.table(tables.name(TableKind.SCHEMA)).scan()
    return sorted((_parse(k, c) for k, c in rows), key=lambda row: str(row["last_written"]))


def merged_history_types(schemas: list[dict[str, object]]) -> dict[str, dict[str, str]]:
    """History list -> field -> Spark type over all schema rows; the latest write wins."""
    types: dict[str, dict[str, str]] = {}
    for row in schemas:
        for name, fields in row.get("history", {}).items():  # type: ignore[union-attr]
            types.setdefault(name, {}).update(fields)
    return types


def merged_types(schemas: list[dict[str, object]]) -> dict[str, str]:
    """``family:qualifier`` -> Spark type over all schema rows; the latest write wins."""
    types: dict[str, str] = {}
    for row in schemas:
        types.update(row["types"])  # type: ignore[arg-type]
    return types


class StaleArchive(FinkError):
    """The survey's tables were written with an older layout this version cannot read."""


def stale_layout(connection, tables: ArchiveTables) -> str | None:
    """Why the survey's existing tables cannot be read or extended, or None.

    An alerts table whose families differ from the layout's (Rubin ``i``/``d`` before
    ``r``/``f``), or a schema row of another layout version (``_``-joined keys), makes the
    archive stale: its keys and cells would be misread, and new rows would mix with rows
    that scans cannot tell apart.
    """
    existing = {name.decode() for name in connection.tables()}
    alerts = tables.name(TableKind.ALERTS)
    fix = (
        f"rebuild it from the science archive: `fink archive --rebuild --survey "
        f"{tables.survey}` (README: Migrating an archive)"
    )
    if alerts in existing:
        families = sorted(f.decode().rstrip(":") for f in connection.table(alerts).families())
        wanted = sorted((tables.families.survey, tables.families.fink))
        if families != wanted:
            return (
                f"HBase table {alerts} has families {families} where layout {LAYOUT_VERSION} "
                f"has {wanted}; {fix}"
            )
    if tables.name(TableKind.SCHEMA) in existing:
        layouts = {int(row["layout"]) for row in read_schemas(connection, tables)}
        if layouts - {LAYOUT_VERSION}:
            return (
                f"the tables {tables.namespace}_{tables.survey}_* hold rows of layout "
                f"{sorted(layouts - {LAYOUT_VERSION})}, this version reads layout "
                f"{LAYOUT_VERSION}; {fix}"
            )
    return None
