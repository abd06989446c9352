"""API output formats on plain frames: each parses back with its standard reader."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

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


#: Rows of every text length up to 1,200 characters: each power-of-two row buffer is
#: filled exactly by one of them, where astropy 8.0.2's C TABLEDATA writer writes its NUL
#: one byte past the buffer. Python's debug allocator checks the bytes around every
#: block, so the overflow aborts the process at the next free instead of corrupting the
#: heap silently (as it did in CI: a segfault minutes later, in unrelated code).
_WRITE_EVERY_LENGTH = """
import io, sys
import pandas as pd
from fink_broker.api import scs
from fink_broker.api.formats import render
c_writer = sys.argv[1] == "c"
for n in range(1, 1200):
    row = pd.DataFrame({"objectId": ["x" * n], "ra": [1.0], "dec": [2.0]})
    if c_writer:
        from astropy.io.votable import from_table
        from astropy.table import Table
        from_table(Table.from_pandas(row)).to_xml(io.BytesIO())
    else:
        render(row, "votable", {})
        scs.votable(row)
print("wrote", n)
"""


def _write_every_length(writer: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", _WRITE_EVERY_LENGTH, writer],
        env={**os.environ, "PYTHONMALLOC": "debug"},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_votables_are_written_without_astropys_overflowing_c_writer():
    """The API's VOTables (``output-format=votable`` and cone search) survive the debug
    allocator on every row length; the same harness catches astropy's C writer (if that
    half fails, an astropy release fixed issue 20419 and the Python writer can go)."""
    ours = _write_every_length("ours")
    assert ours.returncode == 0 and "wrote 1199" in ours.stdout, ours.stderr[-2000:]
    theirs = _write_every_length("c")
    assert theirs.returncode != 0 and "wrote" not in theirs.stdout
    assert "write_tabledata" in theirs.stderr or "tree.py" in theirs.stderr, theirs.stderr[-2000:]
