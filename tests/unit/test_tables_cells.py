"""Cell decoding: the text Spark writes back to the values and pandas dtypes it came from."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from fink_broker.tables.cells import decode_cell, decode_cells, decode_point, typed_frame


def test_scalars_round_trip_exactly():
    value = np.float32(19.123456)
    assert decode_cell(str(value).encode(), "float") == value
    assert decode_cell(repr(0.1 + 0.2).encode(), "double") == 0.1 + 0.2
    assert math.isnan(decode_cell(b"NaN", "double"))
    assert decode_cell(b"-Infinity", "double") == -math.inf
    assert decode_cell(b"1234567890123456789", "bigint") == 1234567890123456789
    assert decode_cell(b"true", "boolean") is True
    assert decode_cell(b"false", "boolean") is False
    assert decode_cell(b"2020-01-01 08:00:00.5", "timestamp") == pd.Timestamp(
        "2020-01-01T08:00:00.5Z"
    )
    assert decode_cell("é".encode(), "string") == "é"
    assert decode_cell(b"\x00\x01", "binary") == b"\x00\x01"
    assert decode_cell(b'{"a":1}', "struct<a:int>") == {"a": 1}
    assert decode_cell(None, "double") is None


def test_decode_cells_types_columns_and_fills_missing_cells():
    rows = [
        {b"d:mjd": b"58849.5", b"i:candid": b"1", b"i:magpsf": b"18.5"},
        {b"d:mjd": b"58850.5", b"i:candid": b"2"},
    ]
    types = {"d:mjd": "double", "i:candid": "bigint", "i:magpsf": "float"}
    frame = decode_cells(rows, types)
    assert list(frame.columns) == ["d:mjd", "i:candid", "i:magpsf"]
    assert frame["i:candid"].dtype == "Int64"
    assert frame["i:magpsf"].dtype == np.float32
    assert np.isnan(frame["i:magpsf"][1])
    assert decode_cells(rows, types, ["i:candid"]).columns.tolist() == ["i:candid"]
    assert decode_cells([], types, ["d:mjd"]).empty


def test_typed_frame_from_avro_values_and_points():
    types = {"d:t": "timestamp", "i:f": "float", "d:l": "array<double>", "d:b": "boolean"}
    records = [{"d:t": pd.Timestamp("2020-01-01T00:00:00Z"), "i:f": 1.5, "d:l": [1.0], "d:b": True}]
    frame = typed_frame([*records, {}], types)
    assert str(frame["d:t"].dtype) == "datetime64[ns, UTC]"
    assert frame["i:f"].dtype == np.float32 and np.isnan(frame["i:f"][1])
    assert frame["d:l"][0] == [1.0] and frame["d:l"][1] is None
    assert frame["d:b"].tolist() == [True, pd.NA]
    point = decode_point(
        b'{"mjd":1.5,"flux":"NaN","band":"g"}', {"r:mjd": "double", "r:flux": "double"}, "r"
    )
    assert point["r:mjd"] == 1.5 and np.isnan(point["r:flux"]) and point["r:band"] == "g"
