"""Cell values of the HBase archive, decoded back into typed values.

The archive writer encodes on the JVM (``engine/hbase_rows.py``). Main-table rows carry
two Avro records (``i:alert``, ``d:fink``) whose schemas the schema table holds; index
cells hold one value each: scalars as Spark's ``CAST(... AS STRING)`` (round-trip exact
for floats and doubles), strings as UTF-8, binaries as they are, and upper-table points
as JSON. A null value writes no cell. With the Spark type of every column (also in the
schema table) this module rebuilds typed frames: the API reads exactly what the science
Parquet held.

>>> decode_cell(b"1.0E-5", "double"), decode_cell(b"19.123457", "float")
(1e-05, np.float32(19.123457))
>>> decode_point(b'{"mjd":58849.5,"maglim":"NaN","kind":"upperlim"}', {"r:mjd": "double",
...              "r:maglim": "double"}, "r")
{'r:mjd': 58849.5, 'r:maglim': nan, 'r:kind': 'upperlim'}
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

#: Spark integer types (``simpleString`` spelling) and the nullable pandas dtype of each
_INTEGERS = {"tinyint": "Int8", "smallint": "Int16", "int": "Int32", "bigint": "Int64"}
#: 64-bit integer types: identifiers that JSON answers give as strings
WIDE_INTEGERS = frozenset({"bigint"})


def is_nested(dtype: str) -> bool:
    """True for types stored as JSON text (arrays, structs, maps)."""
    return dtype.startswith(("array<", "struct<", "map<"))


def decode_cell(value: bytes | None, dtype: str) -> Any:
    """One cell back to a Python value of its Spark type (None stays None)."""
    if value is None:
        return None
    if dtype == "binary":
        return value
    text = value.decode()
    if dtype == "string":
        return text
    if dtype in _INTEGERS:
        return int(text)
    if dtype == "double":
        return float(text)
    if dtype == "float":
        return np.float32(text)
    if dtype == "boolean":
        return text == "true"
    if dtype == "timestamp":
        return pd.Timestamp(text, tz="UTC")
    if is_nested(dtype):
        return json.loads(text)
    return text


def _series(values: list[Any], dtype: str) -> Any:
    """A column of Python values with the pandas dtype of its Spark type."""
    if dtype in _INTEGERS:
        return pd.array(values, dtype=_INTEGERS[dtype])
    if dtype in ("double", "float"):
        numbers = [np.nan if v is None else float(v) for v in values]
        return np.array(numbers, dtype=np.float64 if dtype == "double" else np.float32)
    if dtype == "boolean":
        return pd.array(values, dtype="boolean")
    if dtype == "timestamp":
        return pd.to_datetime(pd.Series(values, dtype=object), utc=True)
    return pd.Series(values, dtype=object)


def typed_frame(
    records: Sequence[Mapping[str, Any]],
    types: Mapping[str, str],
    columns: Iterable[str] | None = None,
) -> pd.DataFrame:
    """A frame from decoded rows (``{family:qualifier: value}``), typed by ``types``.

    ``columns`` selects and orders the output (default: every column present in a row,
    sorted); a column a row lacks is null there. A column without a known type is text.
    """
    if columns is None:
        columns = sorted({name for record in records for name in record})
    data = {
        name: _series([record.get(name) for record in records], types.get(name, "string"))
        for name in columns
    }
    return pd.DataFrame(data, index=pd.RangeIndex(len(records)))


def decode_cells(
    rows: Sequence[Mapping[bytes, bytes]],
    types: Mapping[str, str],
    columns: Iterable[str] | None = None,
) -> pd.DataFrame:
    """A typed frame from index rows as happybase returns them (one value per cell)."""
    records = [
        {k.decode(): decode_cell(v, types.get(k.decode(), "string")) for k, v in row.items()}
        for row in rows
    ]
    return typed_frame(records, types, columns)


def decode_point(value: bytes, types: Mapping[str, str], family: str) -> dict[str, Any]:
    """One upper-table point (JSON written by Spark's ``to_json``) as typed values.

    Spark writes NaN as the string ``"NaN"``; ``float()`` reads it back.
    """
    out: dict[str, Any] = {}
    for name, item in json.loads(value).items():
        column = f"{family}:{name}"
        dtype = types.get(column, "string")
        out[column] = float(item) if dtype == "double" and item is not None else item
    return out
