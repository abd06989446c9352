"""Today's streams: one night of every published schema version through the whole broker.

The simulator makes the versions from ``../shared/datasim`` (ZTF 3.3, Rubin v9): ZTF 3.3
goes out as published and 4.02 re-shaped; Rubin v9 as published and v7.4, v10.0, v11.1
re-shaped. stream2raw must archive every alert and quarantine none, each field the writer
and the archive's reader share must equal fastavro's decode of the same bytes (fastavro's
own schema resolution), and raw2science, distribution, the HBase archive and the API must
run on that night; a light curve must join points of two versions.
"""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import fastavro
import pytest
from confluent_kafka import Consumer, TopicPartition
from fastapi.testclient import TestClient

from fink_broker.api.app import create_app
from fink_broker.lake import Lake
from fink_broker.services import archive, distribution, raw2science
from fink_broker.simulator import kafka_producer as kp
from fink_broker.simulator.replay import replay
from fink_broker.surveys import build_survey
from fink_broker.surveys.base import iter_alert_files
from fink_broker.surveys.rubin import lsst_schema
from tests.alert_compare import differences
from tests.integration.test_stream2raw import drain, settings_for

pytestmark = pytest.mark.integration

#: survey -> (version, re-shaped by the simulator?) in the order the night sends them
VERSIONS = {
    "ztf": (("3.3", False), ("4.02", True)),
    "rubin": (("7.4", True), ("9.0", False), ("10.0", True), ("11.1", True)),
}


def split_folders(datasim: Path, survey: str, tmp: Path) -> list[Path]:
    """The survey's alert files dealt round-robin into one folder per version (links)."""
    folders = [tmp / f"{survey}_{i}" for i in range(len(VERSIONS[survey]))]
    for folder in folders:
        folder.mkdir(parents=True)
    for i, path in enumerate(iter_alert_files(datasim / survey)):
        (folders[i % len(folders)] / path.name).symlink_to(path)
    return folders


def topic_messages(bootstrap: str, topic: str) -> dict[tuple[int, int], bytes]:
    """(partition, offset) -> value of every message of ``topic``."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"read-{topic}", "enable.auto.commit": False}
    )
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        parts = [TopicPartition(topic, p, 0) for p in meta.partitions]
        consumer.assign(parts)
        ends = {p.partition: consumer.get_watermark_offsets(p, timeout=10)[1] for p in parts}
        out: dict[tuple[int, int], bytes] = {}
        while len(out) < sum(ends.values()):
            msg = consumer.poll(5)
            assert msg is not None, "topic read timed out"
            out[(msg.partition(), msg.offset())] = msg.value()
        return out
    finally:
        consumer.close()


def fastavro_records(adapter, value: bytes) -> list[dict]:
    """The message's records resolved by fastavro into the archive's reader schema."""
    reader = adapter.reader.parsed
    if adapter.framing == "avro_container":
        return list(fastavro.reader(io.BytesIO(value), reader_schema=reader))
    schema_id = struct.unpack(">I", value[1:5])[0]
    writer = lsst_schema(schema_id).parsed
    return [fastavro.schemaless_reader(io.BytesIO(value[5:]), writer, reader)]


def writer_version(adapter, value: bytes) -> str:
    """The schema version a message was written in."""
    if adapter.framing == "avro_container":
        return adapter.writer_of(fastavro.reader(io.BytesIO(value)).writer_schema).version
    return lsst_schema(struct.unpack(">I", value[1:5])[0]).version


@pytest.fixture(scope="module")
def mixed_night(spark, local_kafka, datasim, tmp_path_factory):
    """Both surveys' mixed-version nights, drained by stream2raw: (settings, messages)."""
    tmp = tmp_path_factory.mktemp("versions")
    out = {}
    for survey, versions in VERSIONS.items():
        topic = f"it_versions_{survey}"
        settings = settings_for(local_kafka, tmp / survey, survey, topic)
        adapter = build_survey(settings)
        for folder, (version, reshaped) in zip(
            split_folders(datasim, survey, tmp / "folders"), versions, strict=True
        ):
            summary = replay(
                settings,
                survey=adapter,
                folder=folder,
                topic=topic,
                schema_version=version if reshaped else None,
            )
            assert summary.ok, summary.format()
        drain(spark, settings)
        out[survey] = (settings, topic_messages(local_kafka.bootstrap, topic))
    return out


@pytest.mark.parametrize("survey", list(VERSIONS))
def test_every_version_is_archived_and_none_quarantined(spark, mixed_night, survey):
    settings, messages = mixed_night[survey]
    adapter = build_survey(settings)
    lake = Lake(settings.paths.root, survey)
    versions = {writer_version(adapter, v) for v in messages.values()}
    assert len(versions) == len(VERSIONS[survey]), versions
    raw = spark.read.parquet(lake.raw).collect()
    assert len(raw) == len(messages) == {"ztf": 50, "rubin": 100}[survey]
    # the quarantine's commit log records every batch, with no data file when none failed
    assert not list(Path(lake.quarantine).rglob("*.parquet"))
    # every field writer and reader share equals fastavro's decode; the others are null
    rows = {(r["kafka_partition"], r["kafka_offset"]): r.asDict(recursive=True) for r in raw}
    for where, value in messages.items():
        (expected,) = fastavro_records(adapter, value)
        assert differences(expected, rows[where]) == [], (where, writer_version(adapter, value))


def test_fields_a_version_lacks_are_null(spark, mixed_night):
    settings, messages = mixed_night["rubin"]
    adapter = build_survey(settings)
    raw = spark.read.parquet(Lake(settings.paths.root, "rubin").raw)
    by_version: dict[str, list] = {}
    rows = {(r["kafka_partition"], r["kafka_offset"]): r for r in raw.collect()}
    for where, value in messages.items():
        by_version.setdefault(writer_version(adapter, value), []).append(rows[where])
    # exposureTime is new in v11.1; mpc_orbits replaced MPCORB in v10
    assert all(r["diaSource"]["exposureTime"] is None for r in by_version["lsst.v9_0"])
    assert "exposureTime" in raw.schema["diaSource"].dataType.names
    assert "MPCORB" not in raw.columns
    # the v7.4 alert id, alertId, is the reader's diaSourceId (an Avro alias)
    assert all(r["diaSourceId"] == r["diaSource"]["diaSourceId"] for r in by_version["lsst.v7_4"])


@pytest.fixture(scope="module")
def downstream(spark, mixed_night, local_hbase):
    """raw2science, distribution and the HBase archive run over both mixed nights."""
    out = {}
    for survey, (settings, _messages) in mixed_night.items():
        settings.raw2science.trigger = "availableNow"
        settings.distribution.trigger = "availableNow"
        settings.archive.trigger = "availableNow"
        settings.hbase = local_hbase.hbase
        settings.hbase.namespace = "itversions"
        adapter = build_survey(settings)
        for service in (raw2science, distribution, archive):
            query = service.start(settings, spark, adapter)
            query.awaitTermination()
            assert query.exception() is None, service.__name__
        out[survey] = settings
    return out


@pytest.mark.parametrize("survey", list(VERSIONS))
def test_raw2science_distribution_and_archive_run_over_mixed_versions(spark, downstream, survey):
    settings = downstream[survey]
    science = spark.read.parquet(Lake(settings.paths.root, survey).science)
    assert science.count() > 0
    metrics = Path(settings.paths.state_dir) / "metrics"
    for service in ("raw2science", "distribution", "archive"):
        lines = [
            json.loads(line) for line in (metrics / f"{service}.jsonl").read_text().splitlines()
        ]
        assert any(line["rows_in"] > 0 for line in lines), service


def test_api_light_curve_joins_points_of_two_versions(spark, downstream, local_kafka, datasim):
    """One ZTF object observed twice, in 3.3 and in 4.02 (a later alert of the same object,
    made from the first), comes back from /objects with both points."""
    settings = downstream["ztf"]
    adapter = build_survey(settings)
    science = spark.read.parquet(Lake(settings.paths.root, "ztf").science)
    kept = {r["candid"] for r in science.select("candid").collect()}
    record = next(
        r
        for path in iter_alert_files(datasim / "ztf")
        for r in fastavro.reader(path.open("rb"))
        if r["candid"] in kept
    )
    later = {**record, "candid": record["candid"] + 1}
    later["candidate"] = {
        **record["candidate"],
        "candid": record["candid"] + 1,
        "jd": record["candidate"]["jd"] + 0.01,
    }
    topic = settings.stream2raw.topic
    producer = kp.new_producer(kp.producer_config(settings.kafka))
    tracker = kp.DeliveryTracker()
    kp.produce(
        producer, topic, b"later", adapter.encode(later, adapter.schema_version("4.02")), tracker
    )
    kp.flush(producer, tracker)
    drain(spark, settings)
    for service in (raw2science, archive):
        query = service.start(settings, spark, adapter)
        query.awaitTermination()
        assert query.exception() is None
    client = TestClient(create_app(settings))
    answer = client.get("/api/v1/objects", params={"objectId": record["objectId"]})
    assert answer.status_code == 200, answer.text
    points = answer.json()
    candids = sorted(int(p["i:candid"]) for p in points)
    assert candids == [record["candid"], record["candid"] + 1]
