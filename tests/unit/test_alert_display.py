"""Display decoding of real alerts in every framing checkstream meets, without Kafka.

Each real alert of ../shared/datasim is encoded as its survey publishes it (``adapter.encode``)
and as Fink's outgoing format (schemaless Avro, writer schema as JSON in the key); the summary
must give back the record's own id, time, position and photometry. Bad messages of every kind
must come back as undecodable, never as an exception. The pure parts of checkstream (lag from
a Spark checkpoint, report text, CLI flags) are checked here too, as they need no broker.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import struct
from pathlib import Path
from typing import Any

import fastavro
import pytest

from fink_broker.config import load_settings
from fink_broker.services import checkstream
from fink_broker.services.alert_display import (
    AlertDecoder,
    AlertSummary,
    Counts,
    Lag,
    PartitionOffsets,
    Report,
    field_at,
    format_table,
)
from fink_broker.services.stream_offsets import read_spark_offsets
from fink_broker.surveys import get_adapter
from fink_broker.surveys.base import iter_alert_files, read_alert_file

DATASIM = Path(__file__).resolve().parents[2].parent / "shared" / "datasim"
ZTF_BANDS = {1: "g", 2: "r", 3: "i"}


def _alerts(survey: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    folder = DATASIM / survey
    if not folder.is_dir():
        pytest.skip(f"real alerts not available: {folder} is absent")
    return [read_alert_file(path) for path in iter_alert_files(folder)]


@pytest.fixture(scope="module")
def decoder() -> AlertDecoder:
    """One decoder for the module, as checkstream keeps one for its whole run."""
    return AlertDecoder()


def outgoing(record: dict[str, Any], schema: dict[str, Any]) -> tuple[bytes, bytes]:
    """(key, value) of Fink's outgoing format: schema JSON as the key, schemaless body."""
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(schema), record)
    return json.dumps(schema).encode(), buf.getvalue()


def expected(survey: str, record: dict[str, Any]) -> dict[str, Any]:
    """What the summary must show, read straight from the record."""
    if survey == "ztf":
        c = record["candidate"]
        return {
            "survey": "ztf",
            "alert_id": record["candid"],
            "object_id": record["objectId"],
            "mjd": pytest.approx(c["jd"] - 2400000.5, abs=1e-9),
            "ra": c["ra"],
            "dec": c["dec"],
            "band": ZTF_BANDS[c["fid"]],
            "brightness": pytest.approx(c["magpsf"]),
            "brightness_err": pytest.approx(c["sigmapsf"]),
            "unit": "mag",
        }
    s = record["diaSource"]
    object_id = s["diaObjectId"] or f"ss:{s['ssObjectId']}"
    return {
        "survey": "rubin",
        "alert_id": record["diaSourceId"],
        "object_id": object_id,
        "mjd": pytest.approx(s["midpointMjdTai"], abs=1e-12),
        "ra": s["ra"],
        "dec": s["dec"],
        "band": s["band"],
        "brightness": pytest.approx(s["psfFlux"]),
        "brightness_err": pytest.approx(s["psfFluxErr"]),
        "unit": "nJy",
    }


SHOWN = ("survey", "alert_id", "object_id", "mjd", "ra", "dec", "band", "brightness")
SHOWN += ("brightness_err", "unit")


def shown(summary: AlertSummary) -> dict[str, Any]:
    """The displayed values of a summary, keyed like :func:`expected`."""
    return {k: getattr(summary, k) for k in SHOWN}


@pytest.mark.parametrize(
    ("survey", "count", "framing"),
    [("ztf", 50, "avro_container"), ("rubin", 100, "confluent_wire")],
)
def test_survey_wire_format_gives_the_record_values(
    decoder: AlertDecoder, survey: str, count: int, framing: str
) -> None:
    alerts = _alerts(survey)
    assert len(alerts) == count
    adapter = get_adapter(survey)
    for i, (record, _schema) in enumerate(alerts):
        summary = decoder.summarize(adapter.encode(record), b"key", partition=1, offset=i)
        assert summary.ok, summary.error
        assert (summary.framing, summary.partition, summary.offset) == (framing, 1, i)
        assert shown(summary) == expected(survey, record)


@pytest.mark.parametrize("survey", ["ztf", "rubin"])
def test_fink_outgoing_format_gives_the_record_values(decoder: AlertDecoder, survey: str) -> None:
    for record, schema in _alerts(survey):
        key, value = outgoing(record, schema)
        summary = decoder.summarize(value, key)
        assert summary.ok, summary.error
        assert summary.framing == "fink_outgoing"
        assert shown(summary) == expected(survey, record)


def test_outgoing_with_fink_columns_and_a_leading_zero_byte(decoder: AlertDecoder) -> None:
    """Fink adds columns; an empty first string makes the body start like Confluent's magic."""
    record, schema = _alerts("ztf")[0]
    schema = {**schema, "fields": [{"name": "finkclass", "type": "string"}, *schema["fields"]]}
    key, value = outgoing({**record, "finkclass": ""}, schema)
    assert value[0] == 0
    summary = decoder.summarize(value, key)
    assert summary.ok, summary.error
    assert (summary.framing, summary.alert_id) == ("fink_outgoing", record["candid"])


def test_flat_outgoing_record_uses_the_leaf_names(decoder: AlertDecoder) -> None:
    schema = {
        "type": "record",
        "name": "flat",
        "fields": [
            {"name": "diaSourceId", "type": "long"},
            {"name": "midpointMjdTai", "type": "double"},
            {"name": "ra", "type": "double"},
            {"name": "dec", "type": "double"},
            {"name": "psfFlux", "type": ["null", "float"]},
        ],
    }
    rec = {"diaSourceId": 7, "midpointMjdTai": 60000.5, "ra": 1.0, "dec": -2.0, "psfFlux": None}
    summary = decoder.summarize(*reversed(outgoing(rec, schema)))
    assert summary.ok, summary.error
    assert (summary.survey, summary.alert_id, summary.mjd, summary.dec) == (
        "rubin",
        7,
        60000.5,
        -2.0,
    )
    assert summary.brightness is None


def test_field_at_keeps_a_null_subrecord_null() -> None:
    assert field_at({"candidate": None, "jd": 1.0}, "candidate.jd") is None
    assert field_at({"a": {"b": {"c": 3}}}, "a.b.c") == 3


NOT_ALERT_KEY = b'{"type": "record", "name": "x", "fields": [{"name": "n", "type": "int"}]}'


def _bad_messages() -> list[tuple[str, bytes | None, bytes | None, str]]:
    """(name, key, value, expected words in the error)."""
    ztf_record, _ = _alerts("ztf")[0]
    rubin_record, rubin_schema = _alerts("rubin")[0]
    container = get_adapter("ztf").encode(ztf_record)
    wire = get_adapter("rubin").encode(rubin_record)
    key, body = outgoing(rubin_record, rubin_schema)
    rng = random.Random(7)
    garbage = bytes([0x42]) + rng.randbytes(500)
    return [
        ("empty", None, b"", "empty message"),
        ("none", None, None, "empty message"),
        ("garbage", b"inject-garbage-0", garbage, "unknown framing"),
        ("truncated container", None, container[: len(container) // 2], "bad Avro container"),
        ("container header only", None, container[:40], "bad Avro container"),
        ("truncated wire", None, wire[: len(wire) // 3], "bad Avro body"),
        ("wire header cut", None, b"\x00\x00\x03", "cut short"),
        ("unknown schema id", None, struct.pack(">bI", 0, 777) + wire[5:], "unknown schema id 777"),
        ("trailing bytes", None, wire + b"\x00\x01", "trailing bytes"),
        ("key not json", b"{not json", body, "key is not an Avro schema"),
        ("key not a schema", b'{"type": "bogus"}', body, "key is not an Avro schema"),
        ("body not for key", key, garbage, "bad Avro body"),
        ("not an alert", NOT_ALERT_KEY, b"\x02", "not a ZTF or Rubin alert (fields: n)"),
    ]


def test_undecodable_messages_are_reported_not_raised(decoder: AlertDecoder) -> None:
    for name, key, value, words in _bad_messages():
        summary = decoder.summarize(value, key, partition=0, offset=3)
        assert not summary.ok, name
        assert words in (summary.error or ""), (name, summary.error)
        assert "0x" not in (summary.error or ""), "object addresses make errors unstable"
        assert (summary.partition, summary.offset) == (0, 3)


def test_random_bytes_never_raise(decoder: AlertDecoder) -> None:
    rng = random.Random(1)
    wire = get_adapter("rubin").encode(_alerts("rubin")[0][0])
    for _ in range(300):
        head = rng.choice([b"", b"Obj\x01", b"\x00\x00\x00\x03\x84", wire[:200]])
        summary = decoder.summarize(head + rng.randbytes(rng.randint(0, 300)))
        assert summary.error or summary.ok


def test_schemas_are_parsed_once() -> None:
    calls: list[int] = []
    rubin_record, _ = _alerts("rubin")[0]
    wire = get_adapter("rubin").encode(rubin_record)
    real = AlertDecoder()._rubin_schema

    def counting(schema_id: int) -> tuple[str, Any]:
        calls.append(schema_id)
        return real(schema_id)

    decoder = AlertDecoder(rubin_schema=counting)
    bad = struct.pack(">bI", 0, 777) + wire[5:]
    for _ in range(20):
        assert decoder.summarize(wire).ok
        assert not decoder.summarize(bad).ok
    assert calls == [900, 777]


def test_table_aligns_alerts_and_spans_undecodable_rows(decoder: AlertDecoder) -> None:
    record, _ = _alerts("ztf")[0]
    good = decoder.summarize(get_adapter("ztf").encode(record), partition=1, offset=12345)
    bad = decoder.summarize(b"junk", partition=0, offset=7)
    lines = format_table([good, bad], indent="")
    assert lines[0].split()[:3] == ["partition:offset", "survey", "alert"]
    assert lines[1].startswith("1:12345") and str(record["candid"]) in lines[1]
    assert "mag" in lines[1] and "±" in lines[1]
    assert lines[2].startswith("0:7") and "undecodable (unknown framing" in lines[2]
    assert lines[0].index("survey") == lines[1].index("ztf")


# ----------------------------------------------------------------- checkstream's pure parts


def _checkpoint(root: Path, survey: str, batches: dict[int, str], committed: list[int]) -> None:
    folder = root / "checkpoints" / survey / "stream2raw"
    (folder / "offsets").mkdir(parents=True)
    (folder / "commits").mkdir()
    for batch, line in batches.items():
        (folder / "offsets" / str(batch)).write_text(f'v1\n{{"batchWatermarkMs":0}}\n{line}')
        (folder / "offsets" / f".{batch}.crc").write_text("x")
    for batch in committed:
        (folder / "commits" / str(batch)).write_text("v1\n{}")


def test_stream2raw_lag_from_latest_checkpoint(tmp_path: Path) -> None:
    settings = load_settings(None, env={}, overrides={"paths.root": str(tmp_path)})
    _checkpoint(tmp_path, "ztf", {9: '{"t":{"0":1,"1":1}}', 10: '{"t":{"0":20,"1":26}}'}, [9])
    lag = checkstream.stream2raw_lag(settings, "t", {0: 26, 1: 26, 2: 5})
    assert lag.consumer == "stream2raw (ztf)"
    assert lag.next_offsets == {0: 20, 1: 26, 2: None}
    assert lag.lag == {0: 6, 1: 0, 2: None}
    assert lag.total == 6
    assert lag.note == "batch 10 running"


def test_stream2raw_lag_without_or_with_another_checkpoint(tmp_path: Path) -> None:
    settings = load_settings(None, env={}, overrides={"paths.root": str(tmp_path)})
    assert "no checkpoint" in checkstream.stream2raw_lag(settings, "t", {0: 3}).note
    _checkpoint(tmp_path, "rubin", {0: '{"lsst-alerts":{"0":3}}'}, [0])
    assert "does not read t" in checkstream.stream2raw_lag(settings, "t", {0: 3}).note
    lag = checkstream.stream2raw_lag(settings, "lsst-alerts", {0: 5})
    assert (lag.consumer, lag.total, lag.note) == ("stream2raw (rubin)", 2, "batch 0 committed")


def test_read_spark_offsets_skips_other_sources() -> None:
    text = 'v1\n{"batchWatermarkMs":0}\n{"logOffset":3}\n-\n{"a":{"0":5},"b":{"1":2}}'
    assert read_spark_offsets(text) == {"a": {0: 5}, "b": {1: 2}}


def test_report_render_has_every_part(decoder: AlertDecoder) -> None:
    report = Report(
        topic="t",
        number=1,
        time="2026-01-01 00:00:00",
        elapsed_s=2.0,
        interval=Counts(4, 3, 1),
        total=Counts(10, 9, 1),
        rate=2.0,
        partitions=(PartitionOffsets(0, 0, 6), PartitionOffsets(1, 0, 4)),
        lags=(Lag("group g", {0: 6, 1: None}, {0: 0, 1: None}), Lag("stream2raw", note="none")),
        last=(decoder.summarize(b"junk", partition=0, offset=5),),
    )
    text = report.render()
    assert "t: 4 messages in 2.0 s (2.0/s): 3 alerts, 1 undecodable | total 10" in text
    assert "high watermarks: 0: 6, 1: 4 (sum 10)" in text
    assert "lag group g: 0 (0: 0, 1: -)" in text
    assert "lag stream2raw: none" in text
    assert "0:5" in text and "undecodable" in text
    assert report.lag_of("group").total == 0  # type: ignore[union-attr]


def test_cli_flags_join_a_parser_that_has_topic_and_bootstrap() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--topic")
    parser.add_argument("--bootstrap")
    checkstream.add_arguments(parser)
    args = parser.parse_args(["--interval", "2", "--last", "3", "--from-beginning", "--group", "g"])
    assert (args.interval, args.last, args.from_beginning, args.group) == (2.0, 3, True, "g")
    with pytest.raises(SystemExit):
        parser.parse_args(["--interval", "0"])


def test_default_topic_follows_stream2raw_then_survey() -> None:
    settings = load_settings(None, env={}, overrides={"stream2raw.topic": "mine"})
    assert checkstream.default_topic(settings) == "mine"
    settings = load_settings(None, env={}, overrides={"stream2raw.survey": "rubin"})
    assert checkstream.default_topic(settings) == "lsst-alerts"
    ztf = checkstream.default_topic(load_settings(None, env={}))
    assert ztf.startswith("ztf_") and ztf.endswith("_programid1")
