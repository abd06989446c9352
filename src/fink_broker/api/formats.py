"""Answers of the REST API in json, csv, parquet or votable, from one typed frame.

JSON gives 64-bit integers (``bigint`` columns: ``candid``, ``diaSourceId``,
``diaObjectId``...) as strings, because JavaScript and many JSON readers keep only 53 bits
of an integer; NaN and missing values become ``null``. CSV writes arrays as JSON text.
Parquet keeps every type. VOTable (astropy) keeps scalars typed and writes arrays as JSON
text, since a VOTable column holds fixed-shape arrays only.
"""

from __future__ import annotations

import io
import json
import math
import re
import warnings
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import pandas as pd
from fastapi.responses import JSONResponse, Response

from fink_broker.tables.cells import WIDE_INTEGERS

OutputFormat = Literal["json", "csv", "parquet", "votable"]
FORMATS: tuple[str, ...] = ("json", "csv", "parquet", "votable")
MEDIA_TYPES = {
    "json": "application/json",
    "csv": "text/csv",
    "parquet": "application/vnd.apache.parquet",
    "votable": "application/x-votable+xml",
}


def _json_value(value: Any) -> Any:
    """A value JSON can carry: numpy scalars to Python, NaN and NA to None."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_json_value(v) for v in value.tolist()]
    if isinstance(value, bytes):
        return value.hex()
    return value


def records(frame: pd.DataFrame, types: Mapping[str, str]) -> list[dict[str, Any]]:
    """The rows as JSON-ready dicts; ``bigint`` columns as strings, and ``float``
    (32-bit) columns with their shortest decimal (``19.123457``, not the 64-bit
    ``19.123456954956055`` the same value widens to; both read back to that float32)."""
    wide = {c for c in frame.columns if types.get(c) in WIDE_INTEGERS}
    single = {c for c in frame.columns if types.get(c) == "float"}
    out = []
    for row in frame.to_dict(orient="records"):
        item = {}
        for name, value in row.items():
            value = _json_value(value)
            if value is not None and name in wide:
                value = str(value)
            elif value is not None and name in single:
                value = float(str(np.float32(value)))
            item[name] = value
        out.append(item)
    return out


def _flat(frame: pd.DataFrame) -> pd.DataFrame:
    """Nested values (lists) as JSON text, for formats without nested columns."""
    out = frame.copy()
    for name in out.columns:
        if out[name].dtype == object and out[name].map(lambda v: isinstance(v, list)).any():
            out[name] = out[name].map(lambda v: None if v is None else json.dumps(_json_value(v)))
    return out


def _votable(frame: pd.DataFrame) -> bytes:
    from astropy.io.votable import from_table
    from astropy.io.votable.exceptions import W03
    from astropy.table import Table

    flat = _flat(frame)
    for name in flat.columns:  # astropy needs str columns without None
        if pd.api.types.is_datetime64_any_dtype(flat[name].dtype):
            # times as ISO text: astropy makes an object column of them it cannot write
            flat[name] = flat[name].map(lambda v: "" if pd.isna(v) else v.isoformat())
        elif flat[name].dtype == object:
            flat[name] = flat[name].map(lambda v: "" if v is None else str(v))
    with warnings.catch_warnings():
        # astropy warns that it derives IDs from names; they are set just below
        warnings.simplefilter("ignore", W03)
        document = from_table(Table.from_pandas(flat))
    for field in document.get_first_table().fields:
        # FIELD IDs must be XML names: i:magpsf keeps its name, and gets the ID i_magpsf
        field.ID = re.sub(r"[^A-Za-z0-9_]", "_", field.name)
    return votable_bytes(document)


def votable_bytes(document: Any) -> bytes:
    """The XML of an astropy ``VOTableFile``, written by astropy's pure-Python TABLEDATA
    writer. Its C writer (``tablewriter.write_tabledata``, astropy 8.0.2) writes the row's
    closing NUL one byte past its buffer whenever a row's text fills a power-of-two
    buffer exactly (astropy issue 20419): the heap corruption crashed the API process
    later, at random places (pytest segfaulted in CI). ``_debug_python_based_parser``
    is the switch astropy's ``to_xml`` has for its Python writer."""
    buffer = io.BytesIO()
    document.to_xml(buffer, _debug_python_based_parser=True)
    return buffer.getvalue()


def render(frame: pd.DataFrame, fmt: str, types: Mapping[str, str]) -> Response:
    """The HTTP response carrying ``frame`` in format ``fmt``."""
    if fmt == "json":
        return JSONResponse(records(frame, types))
    if fmt == "csv":
        return Response(_flat(frame).to_csv(index=False), media_type=MEDIA_TYPES["csv"])
    if fmt == "parquet":
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        return Response(buffer.getvalue(), media_type=MEDIA_TYPES["parquet"])
    if fmt == "votable":
        return Response(_votable(frame), media_type=MEDIA_TYPES["votable"])
    raise ValueError(f"unknown output format {fmt!r}")
