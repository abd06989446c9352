"""Files of consumed alerts for ``fink consume --save DIR --format parquet|csv|avro``.

One file per topic (and per writer schema, should a topic change schema during a run), named
``<topic>.<UTC start time>.<ext>``, so two runs never overwrite each other:

- **avro**: an Avro container file holding the writer schema of the messages, readable by
  ``fastavro.reader`` and fink-client's ``AlertReader``; records are byte-for-byte the
  published values.
- **parquet**: nested fields are kept (records as structs, arrays as lists, maps as maps).
  The Arrow schema is derived from the Avro writer schema, not inferred from the values, so
  ``int`` stays int32, ``float`` float32, and a column that is null in a whole chunk keeps
  its type. A schema Arrow cannot express (a union of several non-null types) falls back
  to inference from the values.
- **csv**: one row per alert. Nested records are flattened into dotted columns
  (``candidate.magpsf``; a null record leaves its columns empty), arrays and maps are
  JSON-encoded text, bytes (cutouts) are base64 text, timestamps ISO 8601; Avro ``float``
  values are written with float32 precision (``17.6``, not ``17.600000381469727``). Nulls
  are empty cells, so an empty string and a null read back alike. Read it with
  ``pandas.read_csv(path, float_precision="round_trip")`` to get every double back exactly.

Rows are buffered and written by chunks (:data:`CHUNK` alerts), so memory stays bounded
during long pulls; :meth:`AlertFiles.flush` makes everything received so far durable, which
``fink consume`` does before it commits the consumer offsets.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import logging
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal

import fastavro
import fastavro.write
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

log = logging.getLogger(__name__)

FileFormat = Literal["parquet", "csv", "avro"]
FORMATS: tuple[FileFormat, ...] = ("parquet", "csv", "avro")

#: alerts buffered per file before a write: ~150 MB with cutouts, one Parquet row group
CHUNK = 1000

_PRIMITIVES: dict[str, pa.DataType] = {
    "null": pa.null(),
    "boolean": pa.bool_(),
    "int": pa.int32(),
    "long": pa.int64(),
    "float": pa.float32(),
    "double": pa.float64(),
    "bytes": pa.binary(),
    "string": pa.string(),
}

_LOGICAL: dict[str, pa.DataType] = {
    "timestamp-millis": pa.timestamp("ms", tz="UTC"),
    "timestamp-micros": pa.timestamp("us", tz="UTC"),
    "local-timestamp-millis": pa.timestamp("ms"),
    "local-timestamp-micros": pa.timestamp("us"),
    "date": pa.date32(),
    "time-millis": pa.time32("ms"),
    "time-micros": pa.time64("us"),
}


class UnsupportedSchemaError(ValueError):
    """An Avro type without a faithful Arrow equivalent."""


def expanded(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The schema with every named-type reference replaced by its definition.

    Alert schemas define a type once and refer to it by name afterwards (ZTF's cutouts):
    expanding first lets the walkers below look at one node at a time.
    """
    return fastavro.parse_schema(dict(schema), expand=True)


def _non_null(schema: Any) -> tuple[Any, bool]:
    """``(the type, nullable)`` of a node; a union must have at most one non-null branch."""
    if isinstance(schema, list):
        branches = [b for b in schema if b != "null"]
        if len(branches) > 1:
            raise UnsupportedSchemaError(f"union of several types {branches}")
        return (branches[0] if branches else "null"), len(branches) < len(schema)
    return schema, False


def arrow_type(schema: Any) -> pa.DataType:
    """Arrow type of an expanded Avro type (unions with null become nullable fields)."""
    schema, _ = _non_null(schema)
    if isinstance(schema, str):
        if schema not in _PRIMITIVES:
            raise UnsupportedSchemaError(f"unresolved type name {schema!r}")
        return _PRIMITIVES[schema]
    kind = schema.get("type")
    logical = schema.get("logicalType")
    if logical in _LOGICAL:
        return _LOGICAL[logical]
    if logical == "decimal" and int(schema.get("precision", 39)) <= 38:
        return pa.decimal128(int(schema["precision"]), int(schema.get("scale", 0)))
    if logical is not None and logical != "decimal":
        log.debug("logical type %s kept as its underlying type", logical)
    if kind == "record":
        return pa.struct([pa.field(f["name"], arrow_type(f["type"])) for f in schema["fields"]])
    if kind == "array":
        return pa.list_(arrow_type(schema["items"]))
    if kind == "map":
        return pa.map_(pa.string(), arrow_type(schema["values"]))
    if kind == "enum":
        return pa.string()
    if kind == "fixed":
        return pa.binary(int(schema["size"]))
    return arrow_type(kind)  # {"type": "string"} and the like


def arrow_schema(schema: Mapping[str, Any]) -> pa.Schema:
    """Arrow schema of a top-level Avro record schema."""
    node = expanded(schema)
    return pa.schema([pa.field(f["name"], arrow_type(f["type"])) for f in node["fields"]])


def csv_columns(schema: Mapping[str, Any]) -> list[tuple[str, ...]]:
    """Paths of the CSV columns: nested records flattened, everything else one column.

    ``(path, Avro type)`` pairs are in :func:`csv_leaves`.

    >>> csv_columns({"type": "record", "name": "a", "fields": [
    ...     {"name": "id", "type": "long"},
    ...     {"name": "c", "type": ["null", {"type": "record", "name": "c", "fields": [
    ...         {"name": "jd", "type": "double"}]}]}]})
    [('id',), ('c', 'jd')]
    """
    return [path for path, _ in csv_leaves(schema)]


def csv_leaves(schema: Mapping[str, Any]) -> list[tuple[tuple[str, ...], Any]]:
    """``(path, Avro type of the leaf)`` of each CSV column (a union of several types: None)."""

    def walk(node: Mapping[str, Any], prefix: tuple[str, ...]) -> list[tuple[tuple[str, ...], Any]]:
        leaves: list[tuple[tuple[str, ...], Any]] = []
        for f in node["fields"]:
            try:
                inner, _ = _non_null(f["type"])
            except UnsupportedSchemaError:
                inner = None
            if isinstance(inner, dict) and inner.get("type") == "record":
                leaves += walk(inner, (*prefix, f["name"]))
            else:
                leaves.append(((*prefix, f["name"]), inner))
        return leaves

    return walk(expanded(schema), ())


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def csv_cell(value: Any, float32: bool = False) -> Any:
    """The CSV form of one leaf value (see the module docstring).

    >>> csv_cell(17.600000381469727, float32=True), csv_cell([1, None]), csv_cell(b"\\x00")
    (17.6, '[1, null]', 'AA==')
    """
    if float32 and isinstance(value, float):
        return float(str(np.float32(value)))  # the shortest text that is this float32
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | dict):
        return json.dumps(value, default=_json_default)
    return _json_default(value)


def csv_row(record: Mapping[str, Any], leaves: list[tuple[tuple[str, ...], Any]]) -> list[Any]:
    """Cells of one record along ``leaves`` (a null parent record gives empty cells)."""
    row = []
    for path, kind in leaves:
        value: Any = record
        for part in path:
            value = value.get(part) if isinstance(value, Mapping) else None
        row.append(csv_cell(value, float32=kind == "float"))
    return row


def _safe_name(topic: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", topic)


@dataclass
class _File:
    """One output file: a topic under one writer schema."""

    path: Path
    fmt: FileFormat
    schema: dict[str, Any]
    rows: list[Any] = field(default_factory=list)
    count: int = 0
    handle: BinaryIO | None = None
    writer: Any = None
    leaves: list[tuple[tuple[str, ...], Any]] = field(default_factory=list)
    closed: bool = False

    def add(self, record: dict[str, Any]) -> None:
        if self.fmt == "csv":
            if not self.leaves:
                self.leaves = csv_leaves(self.schema)
            self.rows.append(csv_row(record, self.leaves))
        else:
            self.rows.append(record)
        self.count += 1

    def flush(self) -> None:
        if not self.rows:
            return
        if self.fmt == "avro":
            self._write_avro()
        elif self.fmt == "parquet":
            self._write_parquet()
        else:
            self._write_csv()
        self.rows = []

    def _open(self) -> BinaryIO:
        if self.handle is None:
            # "x": never overwrite, e.g. a file of another run started in the same second
            self.handle = open(self.path, "xb")  # noqa: SIM115 (closed in close())
        return self.handle

    def _write_avro(self) -> None:
        if self.writer is None:
            self.writer = fastavro.write.Writer(self._open(), fastavro.parse_schema(self.schema))
        for record in self.rows:
            self.writer.write(record)
        self.writer.flush()
        assert self.handle is not None
        self.handle.flush()

    def _write_parquet(self) -> None:
        if self.writer is None:
            try:
                target = arrow_schema(self.schema)
                table = pa.Table.from_pylist(self.rows, schema=target)
            except UnsupportedSchemaError as err:
                log.warning("%s: %s: Arrow types inferred from the values", self.path, err)
                table = pa.Table.from_pylist(self.rows)
            self.writer = pq.ParquetWriter(self._open(), table.schema)
        else:
            table = pa.Table.from_pylist(self.rows, schema=self.writer.schema)
        self.writer.write_table(table)

    def _write_csv(self) -> None:
        header = self.handle is None
        frame = pd.DataFrame(self.rows, columns=[".".join(p) for p, _ in self.leaves])
        text = frame.to_csv(index=False, header=header)
        handle = self._open()
        handle.write(text.encode())
        handle.flush()

    def close(self) -> None:
        if self.closed:
            return
        self.flush()
        self.closed = True
        if self.fmt == "parquet" and self.writer is not None:
            self.writer.close()
        if self.handle is not None:
            self.handle.close()


class AlertFiles:
    """Alerts of any number of topics written to ``directory`` in one format.

    Use as a context manager, or call :meth:`close`: a Parquet file is unreadable until its
    footer is written.
    """

    def __init__(self, directory: str | Path, fmt: FileFormat, *, chunk: int = CHUNK) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.fmt = fmt
        self.chunk = chunk
        self.stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
        #: (topic, schema key) -> file
        self._files: dict[tuple[str, bytes], _File] = {}
        self._per_topic: dict[str, int] = {}

    def add(self, topic: str, schema_key: bytes, schema: dict[str, Any], record: dict) -> None:
        """Buffer one record; write the chunk when it is full."""
        out = self._files.get((topic, schema_key))
        if out is None:
            n = self._per_topic.get(topic, 0) + 1
            self._per_topic[topic] = n
            suffix = "" if n == 1 else f".{n}"
            name = f"{_safe_name(topic)}.{self.stamp}{suffix}.{self.fmt}"
            out = _File(self.directory / name, self.fmt, schema)
            self._files[(topic, schema_key)] = out
            if n > 1:
                log.warning("%s changed schema: new alerts go to %s", topic, out.path)
        out.add(record)
        if len(out.rows) >= self.chunk:
            out.flush()

    @property
    def buffered(self) -> int:
        """Records received but not written yet."""
        return sum(len(f.rows) for f in self._files.values())

    def flush(self) -> None:
        """Write every buffered record (the files stay open)."""
        for out in self._files.values():
            out.flush()

    def close(self) -> dict[Path, int]:
        """Write everything and close the files; returns path -> number of alerts."""
        for out in self._files.values():
            out.close()
        return {f.path: f.count for f in self._files.values()}

    def __enter__(self) -> AlertFiles:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
