"""Cell values of the HBase archive: the text the JVM writes, and its decoding by type.

The archive writer encodes on the JVM (``engine/hbase_rows.py``): scalars as Spark's
``CAST(... AS STRING)`` (round-trip exact for floats and doubles), strings as UTF-8, arrays
and structs as JSON (``to_json``), binaries as they are; a null value writes no cell. The
Spark type of every column is recorded in the schema table, and this module turns cells
back into typed values with it: the API reads exactly what the science Parquet held.

>>> decode_cell(b"1.0E-5", "double"), decode_cell(b"19.123457", "float")
(1e-05, np.float32(19.123457))
>>> decode_cell(b"[1.5,NaN]", "array<double>")
[1.5, nan]
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


def _series(values: list[Any], dtype: str) -> pd.Series:
    """A column of decoded values with the pandas dtype of its Spark type."""
    if dtype in _INTEGERS:
        return pd.array(values, dtype=_INTEGERS[dtype])
    if dtype == "double":
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    if dtype == "float":
        return np.array([np.nan if v is None else v for v in values], dtype=np.float32)
    if dtype == "boolean":
        return pd.array(values, dtype="boolean")
    if dtype == "timestamp":
        return pd.to_datetime(pd.Series(values, dtype=object), utc=True)
    return pd.Series(values, dtype=object)


def decode_rows(
    rows: Sequence[Mapping[bytes, bytes]],
    types: Mapping[str, str],
    columns: Iterable[str] | None = None,
) -> pd.DataFrame:
    """A typed frame from happybase rows (``{b"family:qualifier": value}``).

    ``types`` maps ``family:qualifier`` to its Spark type (from the schema table);
    ``columns`` selects and orders the output (default: every typed column present in a
    row, sorted). A column without a known type comes back as text.
    """
    if columns is None:
        seen = {key.decode() for row in rows for key in row}
        columns = sorted(seen)
    data: dict[str, Any] = {}
    for name in columns:
        dtype = types.get(name, "string")
        key = name.encode()
        values = [decode_cell(row.get(key), dtype) for row in rows]
        data[name] = _series(values, dtype)
    return pd.DataFrame(data, index=pd.RangeIndex(len(rows)))
