"""`fink consume`: Fink's outgoing messages are printed, or saved to files that read back equal.

The messages are built here in Fink's outgoing format (key = writer schema JSON, value =
schemaless Avro), with the shapes the distribution publishes: nested records, nullable
fields in both union orders, arrays with null items, a map, bytes cutouts and a named type
used twice. ``fink consume`` runs as a subprocess, as a user would run it.
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import fastavro
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from confluent_kafka import Producer

from fink_broker.services.consume import consume
from tests.integration.conftest import LocalKafka

pytestmark = pytest.mark.integration

N = 20

SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "alert",
    "namespace": "fink",
    "fields": [
        {"name": "objectId", "type": "string"},
        {"name": "candid", "type": "long"},
        {
            "name": "candidate",
            "type": {
                "type": "record",
                "name": "candidate",
                "fields": [
                    {"name": "jd", "type": "double"},
                    {"name": "ra", "type": "double"},
                    {"name": "dec", "type": "double"},
                    {"name": "magpsf", "type": "float"},
                    {"name": "sigmapsf", "type": "float"},
                    {"name": "fid", "type": "int"},
                    {"name": "isdiffpos", "type": ["null", "string"]},
                ],
            },
        },
        {"name": "finkclass", "type": ["string", "null"]},  # Spark writes the type first
        {"name": "rf_snia_vs_nonia", "type": ["null", "double"]},
        {"name": "lc_features_g", "type": ["null", {"type": "array", "items": ["double", "null"]}]},
        {"name": "tags", "type": {"type": "map", "values": "long"}},
        {"name": "nalerthist", "type": "int"},
        {"name": "is_new", "type": "boolean"},
        {
            "name": "cutoutScience",
            "type": [
                "null",
                {
                    "type": "record",
                    "name": "cutout",
                    "fields": [
                        {"name": "fileName", "type": "string"},
                        {"name": "stampData", "type": "bytes"},
                    ],
                },
            ],
        },
        {"name": "cutoutTemplate", "type": ["null", "cutout"]},  # the named type again
    ],
}


def f32(x: float) -> float:
    """A value a 32-bit Avro float holds exactly, so equality is a fair test."""
    return float(np.float32(x))


def make_record(i: int) -> dict[str, Any]:
    """Alert ``i``; every fifth one has its nullable fields null."""
    sparse = i % 5 == 0
    stamp = bytes((i + k) % 256 for k in range(64)) + b"\x00\xff"
    return {
        "objectId": f"ZTF24aa{i:05d}",
        "candid": 2_800_000_000_000_000 + i,
        "candidate": {
            "jd": 2460400.5 + i / 7,
            "ra": 10.0 + i * 1.234567,
            "dec": -20.0 + i * 0.987654,
            "magpsf": f32(17.5 + i / 10),
            "sigmapsf": f32(0.05 + i / 1000),
            "fid": 1 + i % 2,
            "isdiffpos": None if sparse else ("t" if i % 2 else "f"),
        },
        "finkclass": None if sparse else f"SN candidate {i}",
        "rf_snia_vs_nonia": None if sparse else i / 19,
        "lc_features_g": None if sparse else [i * 0.5, None, -1.25e-7, 3.0e12],
        "tags": {} if sparse else {"rising": i, "early": -i},
        "nalerthist": i * 3,
        "is_new": i % 3 == 0,
        "cutoutScience": {"fileName": f"sci{i}.fits.gz", "stampData": stamp},
        "cutoutTemplate": None if sparse else {"fileName": f"tpl{i}.fits.gz", "stampData": stamp},
    }


@pytest.fixture(scope="module")
def topic(local_kafka: LocalKafka) -> str:
    """A topic holding the N alerts in Fink's outgoing format (over 2 partitions)."""
    name = f"fink_test_consume_{uuid.uuid4().hex[:8]}"
    key = json.dumps(SCHEMA).encode()
    parsed = fastavro.parse_schema(SCHEMA)
    producer = Producer({"bootstrap.servers": local_kafka.bootstrap})
    for i in range(N):
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, parsed, make_record(i))
        producer.produce(name, key=key, value=buf.getvalue())
    assert producer.flush(30) == 0
    return name


def fink_consume(local_kafka: LocalKafka, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """Run ``fink consume`` as a user would, away from any developer config."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINK_")}
    argv = [sys.executable, "-m", "fink_broker.cli.main", "consume"]
    argv += [*args, "--bootstrap", local_kafka.bootstrap]
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def by_candid(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(records, key=lambda r: int(r["candid"]))


def same(expected: Any, got: Any, where: str) -> None:
    """Compare a decoded value with what pandas/pyarrow gives back (arrays, NaN, map pairs)."""
    if expected is None:
        assert got is None or (isinstance(got, float) and math.isnan(got)), f"{where}: {got!r}"
    elif isinstance(expected, dict):
        if isinstance(got, list | np.ndarray):  # an Arrow map reads back as (key, value) pairs
            got = dict(list(got))
        assert isinstance(got, dict) and set(got) == set(expected), f"{where}: {got!r}"
        for key, value in expected.items():
            same(value, got[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert len(got) == len(expected), f"{where}: {got!r}"
        for k, (e, g) in enumerate(zip(expected, got, strict=True)):
            same(e, g, f"{where}[{k}]")
    elif isinstance(expected, bool):
        assert bool(got) is expected, f"{where}: {got!r}"
    elif isinstance(expected, float):
        assert float(got) == expected, f"{where}: {got!r} != {expected!r}"
    else:
        assert got == expected, f"{where}: {got!r} != {expected!r}"


def saved_file(directory: Path, fmt: str) -> Path:
    (path,) = directory.glob(f"*.{fmt}")
    assert path.name.startswith("fink_test_consume_")
    return path


def test_print_one_line_per_alert_and_continue_where_the_group_stopped(
    local_kafka: LocalKafka, topic: str, tmp_path: Path
) -> None:
    group = f"g-print-{uuid.uuid4().hex[:6]}"
    first = fink_consume(
        local_kafka, tmp_path, topic, "--from-beginning", "--max", "5", "--group", group
    )
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert len(lines) == 5
    for line in lines:
        assert line.startswith(f"{topic} ") and "  ztf  object=ZTF24aa" in line, line
        assert " mag" in line and "mjd=604" in line and "ra=" in line and "dec=" in line
    assert "stopped: max" in first.stderr

    # the same group goes on with the 15 others, then stops after 2 s without messages
    rest = fink_consume(local_kafka, tmp_path, topic, "--group", group, "--timeout", "2")
    assert rest.returncode == 0, rest.stderr
    seen = [line.split()[3] for line in lines + rest.stdout.splitlines()]
    assert sorted(seen) == sorted(f"object=ZTF24aa{i:05d}" for i in range(N))
    assert "stopped: timeout" in rest.stderr


@pytest.mark.parametrize("fmt", ["avro", "parquet", "csv"])
def test_saved_files_read_back_equal(
    local_kafka: LocalKafka, topic: str, tmp_path: Path, fmt: str
) -> None:
    out = tmp_path / "alerts"
    done = fink_consume(
        local_kafka,
        tmp_path,
        topic,
        "--from-beginning",
        "--max",
        str(N),
        "--group",
        f"g-{fmt}-{uuid.uuid4().hex[:6]}",
        "--save",
        str(out),
        "--format",
        fmt,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""  # saving prints no alert lines
    assert f"consumed {N} alerts (0 undecodable)" in done.stderr
    path = saved_file(out, fmt)
    expected = by_candid([make_record(i) for i in range(N)])

    if fmt == "avro":
        with open(path, "rb") as handle:
            reader = fastavro.reader(handle)
            assert reader.writer_schema["name"] == "fink.alert"
            assert by_candid(list(reader)) == expected  # exact: bytes, nulls, floats

    elif fmt == "parquet":
        schema = pq.read_schema(path)
        assert schema.field("candid").type == pa.int64()
        assert schema.field("nalerthist").type == pa.int32()
        candidate = schema.field("candidate").type
        assert pa.types.is_struct(candidate)
        assert candidate.field("magpsf").type == pa.float32()
        assert pa.types.is_map(schema.field("tags").type)
        assert schema.field("cutoutTemplate").type == schema.field("cutoutScience").type
        got = by_candid(pd.read_parquet(path).to_dict("records"))
        for i, (e, g) in enumerate(zip(expected, got, strict=True)):
            same(e, g, f"alert {i}")

    else:
        frame = pd.read_csv(path, float_precision="round_trip")
        assert "candidate.magpsf" in frame.columns and "cutoutScience.stampData" in frame.columns
        got = by_candid(frame.to_dict("records"))
        for i, (e, g) in enumerate(zip(expected, got, strict=True)):
            same(e, unflatten_csv(g), f"alert {i}")


def unflatten_csv(row: dict[str, Any]) -> dict[str, Any]:
    """Undo the documented CSV encoding: dotted columns, JSON arrays/maps, base64 bytes,
    Avro floats written with float32 precision."""
    record: dict[str, Any] = {}
    for column, cell in row.items():
        value = None if isinstance(cell, float) and math.isnan(cell) else cell
        if column in ("candidate.magpsf", "candidate.sigmapsf"):
            value = f32(value)
        if column in ("lc_features_g", "tags") and value is not None:
            value = json.loads(value)
        if column.endswith(".stampData") and value is not None:
            value = base64.b64decode(value)
        head, _, leaf = column.partition(".")
        if leaf:
            record.setdefault(head, {})[leaf] = value
        else:
            record[column] = value
    for name in ("cutoutScience", "cutoutTemplate"):  # a null record: all its cells empty
        if all(v is None for v in record[name].values()):
            record[name] = None
    return record


def test_consume_api_returns_the_records(local_kafka: LocalKafka, topic: str) -> None:
    got = consume(
        local_kafka.settings,
        [topic],
        from_beginning=True,
        max_alerts=N,
        timeout=20,
        group=f"g-api-{uuid.uuid4().hex[:6]}",
    )
    assert by_candid(got) == by_candid([make_record(i) for i in range(N)])


def test_consume_stops_after_the_idle_timeout(local_kafka: LocalKafka) -> None:
    started = time.monotonic()
    got = consume(local_kafka.settings, [f"absent_{uuid.uuid4().hex[:8]}"], timeout=1.5)
    assert got == []
    assert time.monotonic() - started < 10
