"""Every published schema version decodes into the archive's reader schema, on the JVM, as
fastavro's own schema resolution reads the same bytes; what cannot flow is quarantined with
its reason, one record at a time.
"""

from __future__ import annotations

import copy
import io
import json

import fastavro
import pytest

from fink_broker.engine.decode import decode
from fink_broker.simulator.bad_messages import deflate_bomb
from fink_broker.simulator.replay import _both_ways
from fink_broker.simulator.versions import convert
from fink_broker.surveys import get_adapter
from fink_broker.surveys.base import (
    WireSchema,
    container_bytes,
    iter_alert_files,
    read_alert_file,
)
from tests.alert_compare import differences
from tests.spark.test_decode import kafka_like

pytestmark = pytest.mark.spark

RUBIN_VERSIONS = ("7.4", "9.0", "10.0", "11.1")
ZTF_VERSIONS = ("3.3", "4.02")


def _records(datasim, survey: str, n: int) -> list[dict]:
    return [read_alert_file(f)[0] for f in list(iter_alert_files(datasim / survey))[:n]]


def _shaped(adapter, record: dict, wire: WireSchema) -> dict:
    shaped, _filled = convert(record, json.loads(wire.json), _both_ways(adapter.renamed))
    return shaped


def _resolved(payload: bytes, writer: dict, adapter) -> dict:
    """fastavro's decode of a record's bytes into the reader schema."""
    return fastavro.schemaless_reader(io.BytesIO(payload), writer, adapter.reader.parsed)


def _payload(record: dict, writer: dict) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, writer, record)
    return buf.getvalue()


def test_rubin_versions_resolve_like_fastavro(spark, datasim):
    adapter = get_adapter("rubin")
    assert {"7.4", "9.0", "10.0", "11.1"} <= {
        w.version.removeprefix("lsst.v").replace("_", ".") for w in adapter.accepted
    }
    messages, expected = [], []
    for i, record in enumerate(_records(datasim, "rubin", 20)):
        wire = adapter.schema_version(RUBIN_VERSIONS[i % len(RUBIN_VERSIONS)])
        shaped = _shaped(adapter, record, wire)
        messages.append(adapter.encode(shaped, wire))
        expected.append(_resolved(messages[-1][5:], wire.parsed, adapter))
    rows = decode(kafka_like(spark, messages), adapter).orderBy("kafka_offset").collect()
    assert [r["error"] for r in rows] == [None] * len(messages)
    for want, row in zip(expected, rows, strict=True):
        got = row["alert"].asDict(recursive=True)
        assert differences(want, got) == []
    # v7.4 named the alert id alertId: the reader's alias carries it into diaSourceId
    assert rows[0]["alert"]["diaSourceId"] == expected[0]["diaSourceId"] is not None
    # fields v11.1 added are null for the older versions
    assert rows[0]["alert"]["diaSource"]["exposureTime"] is None


def test_ztf_versions_multi_record_and_unknown_schema_resolve_like_fastavro(spark, datasim):
    adapter = get_adapter("ztf")
    records = _records(datasim, "ztf", 8)
    v33, v402 = (adapter.schema_version(v) for v in ZTF_VERSIONS)
    # a version the broker never shipped: 4.02 with an extra field, known only from its own
    # container (schema on read)
    newer = copy.deepcopy(json.loads(v402.json))
    newer["fields"].insert(2, {"name": "brand_new", "type": "string", "default": ""})
    newer_parsed = fastavro.parse_schema(newer)
    messages = [
        container_bytes(records[0], v33.parsed),
        container_bytes(records[1], v402.parsed),
        container_bytes([records[2], records[3], records[4]], v402.parsed),
        container_bytes({**records[5], "brand_new": "x"}, newer_parsed),
    ]
    # the deflate codec, with several blocks
    buf = io.BytesIO()  # sync_interval=1: a block per record
    fastavro.writer(buf, v33.parsed, records[6:8], codec="deflate", sync_interval=1)
    messages.append(buf.getvalue())
    rows = decode(kafka_like(spark, messages), adapter).orderBy("kafka_offset", "kafka_record")
    rows = rows.collect()
    assert [(r["kafka_offset"], r["kafka_record"]) for r in rows] == [
        (0, 0),
        (1, 0),
        (2, 0),
        (2, 1),
        (2, 2),
        (3, 0),
        (4, 0),
        (4, 1),
    ]
    assert [r["error"] for r in rows] == [None] * 8
    writers = [v33, v402, v402, v402, v402, None, v33, v33]
    for i, (row, wire) in enumerate(zip(rows, writers, strict=True)):
        record = {**records[5], "brand_new": "x"} if wire is None else records[i]
        schema = newer_parsed if wire is None else wire.parsed
        want = _resolved(_payload(record, schema), schema, adapter)
        assert differences(want, row["alert"].asDict(recursive=True)) == [], i
    assert rows[0]["alert"]["fp_hists"] is None  # 3.3 has no forced photometry
    assert "brand_new" not in rows[5]["alert"].asDict()  # the reader drops what it lacks


def test_what_cannot_flow_is_quarantined_record_by_record(spark, datasim):
    ztf = get_adapter("ztf")
    records = _records(datasim, "ztf", 3)
    v402 = ztf.schema_version("4.02")
    # a writer whose candid is a string: it cannot resolve into the reader's long
    broken = copy.deepcopy(json.loads(v402.json))
    broken["fields"][3]["type"] = "string"
    unresolvable = container_bytes({**records[0], "candid": "abc"}, fastavro.parse_schema(broken))
    # a container of two records whose second is cut short
    two = container_bytes([records[1], records[2]], v402.parsed)
    nan_time = copy.deepcopy(records[0])
    nan_time["candidate"]["jd"] = float("nan")
    old_time = copy.deepcopy(records[0])
    old_time["candidate"]["jd"] = 2415020.5  # 1900: before the survey
    messages = [
        unresolvable,
        container_bytes(nan_time, v402.parsed),
        container_bytes(old_time, v402.parsed),
        _bomb(v402),
        two,
    ]
    rows = decode(kafka_like(spark, messages), ztf, max_bytes=8 * 2**20).orderBy("kafka_offset")
    errors = [r["error"] for r in rows.collect()]
    assert "at candid" in errors[0], errors[0]
    assert "is not finite" in errors[1] and "candidate.jd" in errors[1]
    assert "outside the survey's era" in errors[2]
    assert "larger than 8388608 bytes" in errors[3]
    assert errors[4:] == [None, None]


def _bomb(wire: WireSchema) -> bytes:
    """A container whose one deflate block inflates to 64 MB of zeros: a few kB on the wire."""
    return deflate_bomb(wire.json, 64 * 2**20)
