"""Every real alert decodes on the JVM to exactly what fastavro reads from its file."""

from __future__ import annotations

import datetime as dt
import struct

import pytest

from fink_broker.engine.decode import archive_columns, decode, quarantine_columns
from fink_broker.surveys import get_adapter
from fink_broker.surveys.base import iter_alert_files, read_alert_file
from tests.alert_compare import as_archived, differences

pytestmark = pytest.mark.spark


def kafka_like(spark, messages: list[bytes], topic: str = "t"):
    """A DataFrame shaped like Spark's Kafka source, from message bytes."""
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    rows = [(None, m, topic, i % 2, i, now, 0) for i, m in enumerate(messages)]
    schema = (
        "key binary, value binary, topic string, partition int, offset long, "
        "timestamp timestamp, timestampType int"
    )
    return spark.createDataFrame(rows, schema)


@pytest.mark.parametrize(("survey", "count"), [("ztf", 50), ("rubin", 100)])
def test_every_alert_decodes_like_fastavro(spark, datasim, survey, count):
    adapter = get_adapter(survey)
    files = list(iter_alert_files(datasim / survey))
    assert len(files) == count
    records = [read_alert_file(f)[0] for f in files]
    decoded = decode(kafka_like(spark, [adapter.encode(r) for r in records]), adapter)
    rows = decoded.orderBy("kafka_offset").collect()
    assert [r["error"] for r in rows] == [None] * count
    for record, row in zip(records, rows, strict=True):
        expected = as_archived(adapter, record)
        assert differences(expected, row["alert"].asDict(recursive=True)) == []


def test_archive_rows_carry_night_provenance_and_offsets(spark, datasim):
    adapter = get_adapter("ztf")
    records = [read_alert_file(f)[0] for f in list(iter_alert_files(datasim / "ztf"))[:5]]
    archived = archive_columns(
        decode(kafka_like(spark, [adapter.encode(r) for r in records]), adapter), adapter
    ).collect()
    assert {r["night"] for r in archived} == {"20200101"}
    assert sorted(r["kafka_offset"] for r in archived) == [0, 1, 2, 3, 4]
    assert all(r["fink_broker_version"] and r["fink_ingest_time"] for r in archived)


def test_bad_messages_get_a_reason_and_keep_their_bytes(spark, datasim):
    ztf, rubin = get_adapter("ztf"), get_adapter("rubin")
    z = ztf.encode(read_alert_file(next(iter_alert_files(datasim / "ztf")))[0])
    r = rubin.encode(read_alert_file(next(iter_alert_files(datasim / "rubin")))[0])
    unknown_id = b"\x00" + struct.pack(">I", 9999) + r[5:]
    cases = {
        "ztf": [z, b"garbage", z[: len(z) // 2], z[:-20]],
        "rubin": [r, b"\x07garbage", r[: len(r) // 2], unknown_id, b"\x00\x00"],
    }
    expected = {
        "ztf": [None, "not an Avro object container", "truncated", "truncated"],
        "rubin": [None, "bad magic byte", "does not decode", "unknown schema 9999", "shorter"],
    }
    for survey, adapter in (("ztf", ztf), ("rubin", rubin)):
        decoded = decode(kafka_like(spark, cases[survey]), adapter).orderBy("kafka_offset")
        errors = [row["error"] for row in decoded.collect()]
        for want, got in zip(expected[survey], errors, strict=True):
            if want is None:
                assert got is None
            else:
                assert got is not None and want in got, (want, got)
        bad = quarantine_columns(decoded).orderBy("kafka_offset").collect()
        assert [bytes(b["value"]) for b in bad] == cases[survey][1:]
