"""API output formats on plain frames: each parses back with its standard reader."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
from astropy.io.votable import parse_single_table

from fink_broker.api.formats import records, render

TYPES = {"i:candid": "bigint", "i:magpsf": "float", "d:mjd": "double", "d:hist": "array<double>"}


def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "i:candid": pd.array([1234567890123456789, None], dtype="Int64"),
            "i:magpsf": np.array([19.123457, np.nan], dtype=np.float32),
            "d:mjd": [58849.25, 58850.5],
            "d:hist": [[1.0, float("nan")], None],
            "d:finkclass": ["Unknown", None],
        }
    )


def test_json_gives_64_bit_ids_as_strings_and_nan_as_null():
    out = records(frame(), TYPES)
    assert out[0]["i:candid"] == "1234567890123456789"
    assert out[1]["i:candid"] is None and out[1]["i:magpsf"] is None
    assert out[0]["i:magpsf"] == 19.123457 and out[0]["d:hist"] == [1.0, None]
    assert np.float32(out[0]["i:magpsf"]) == frame()["i:magpsf"][0]
    body = render(frame(), "json", TYPES).body
    assert json.loads(body) == out  # strict JSON: no NaN token


def test_csv_parquet_votable_parse_back():
    csv = pd.read_csv(io.StringIO(render(frame(), "csv", TYPES).body.decode()))
    assert csv["i:candid"].iloc[0] == 1234567890123456789
    assert json.loads(csv["d:hist"].iloc[0]) == [1.0, None]
    parquet = pd.read_parquet(io.BytesIO(render(frame(), "parquet", TYPES).body))
    assert parquet["i:magpsf"].dtype == np.float32
    assert parquet["i:candid"].iloc[0] == 1234567890123456789
    table = parse_single_table(io.BytesIO(render(frame(), "votable", TYPES).body))
    columns = table.to_table(use_names_over_ids=True)
    assert columns["i:candid"][0] == 1234567890123456789
    assert float(columns["d:mjd"][1]) == 58850.5
    assert [f.ID for f in table.fields][:2] == ["i_candid", "i_magpsf"]
