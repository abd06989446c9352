"""A fuzzed stream through a real Kafka broker and stream2raw: every kind of bad message,
mixed among the real alerts, is quarantined with its reason, every good alert is archived
(a multi-record message as one row per record), and the query never fails."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from fink_broker.lake import Lake
from fink_broker.simulator.bad_messages import multi_record
from fink_broker.simulator.replay import Injection, replay
from fink_broker.surveys import get_adapter
from fink_broker.surveys.base import iter_alert_files, read_alert_file
from tests.integration.test_stream2raw import drain, settings_for

pytestmark = pytest.mark.integration

#: bad messages per survey and kind; ``unknown_schema`` is Rubin's (a ZTF container carries
#: its writer schema, which flows by schema resolution) and ``deflate_bomb`` ZTF's
FUZZ = {
    "ztf": {
        "garbage": 3,
        "truncated": 3,
        "empty": 2,
        "null_value": 2,
        "random_5mb": 1,
        "deflate_bomb": 1,
        "nan_time": 2,
        "wrong_magic": 2,
    },
    "rubin": {
        "garbage": 2,
        "truncated": 2,
        "empty": 1,
        "null_value": 1,
        "random_5mb": 1,
        "unknown_schema": 3,
        "nan_time": 2,
        "wrong_magic": 2,
    },
}

#: what each kind's quarantine reason says (a word of it, lower case)
REASON = {
    "garbage": "",
    "truncated": "",
    "empty": "",
    "null_value": "",
    "random_5mb": "",
    "deflate_bomb": "larger than",
    "nan_time": "not finite",
    "unknown_schema": "unknown schema",
    "wrong_magic": "",
}

#: added to the candid of the records of the multi-record message: alerts of their own
MULTI_IDS = 10**15


def topic_keys(bootstrap: str, topic: str) -> dict[tuple[int, int], str]:
    """(partition, offset) -> key of every message of ``topic``, read back from Kafka."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"fuzz-{topic}", "enable.auto.commit": False}
    )
    try:
        partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1]
            for p in partitions
        }
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        out: dict[tuple[int, int], str] = {}
        while len(out) < sum(ends.values()):
            message = consumer.poll(10)
            assert message is not None, "the topic could not be read back"
            if message.error() is None:
                out[(message.partition(), message.offset())] = (message.key() or b"").decode()
        return out
    finally:
        consumer.close()


@pytest.mark.parametrize("survey", ["ztf", "rubin"])
def test_every_bad_message_is_quarantined_and_every_good_alert_archived(
    spark, local_kafka, datasim, tmp_path, survey
):
    topic = f"it_fuzz_{survey}"
    settings = settings_for(local_kafka, tmp_path, survey, topic, max_decoded_mb=32)
    injected = FUZZ[survey]
    summary = replay(
        settings,
        survey=survey,
        folder=datasim / survey,
        topic=topic,
        inject=[Injection(kind, n) for kind, n in injected.items()],
        seed=11,
    )
    assert summary.ok and {k: v for k, v in summary.bad.items() if v} == injected
    adapter = get_adapter(survey)
    records = [read_alert_file(f)[0] for f in iter_alert_files(datasim / survey)]
    expected = {r[adapter.alert_id] for r in records}
    if survey == "ztf":  # one message of three alerts
        trio = [dict(r, candid=r["candid"] + MULTI_IDS) for r in records[:3]]
        producer = Producer({"bootstrap.servers": local_kafka.bootstrap})
        producer.produce(topic, value=multi_record(adapter, trio), key=b"multi")
        assert producer.flush(30) == 0
        expected |= {r["candid"] for r in trio}

    drain(spark, settings)  # the query ends by itself, with no exception

    lake = Lake(settings.paths.root, survey)
    archived = [r[0] for r in spark.read.parquet(lake.raw).select(adapter.alert_id).collect()]
    assert len(archived) == len(set(archived)) and set(archived) == expected
    quarantine = spark.read.parquet(lake.quarantine).collect()
    assert len(quarantine) == sum(injected.values())
    keys = topic_keys(local_kafka.bootstrap, topic)
    by_kind: dict[str, list[str]] = {}
    for row in quarantine:
        key = keys[(row["kafka_partition"], row["kafka_offset"])]
        assert key.startswith("inject-"), f"a good message is in quarantine: {row['error']}"
        by_kind.setdefault(key.split("-")[1], []).append(row["error"])
    assert {k: len(v) for k, v in by_kind.items()} == injected
    for kind, errors in by_kind.items():
        assert all(e and REASON[kind] in e.lower() for e in errors), (kind, errors)
    metrics = [
        json.loads(line)
        for line in (Path(settings.paths.state_dir) / "metrics" / "stream2raw.jsonl")
        .read_text()
        .splitlines()
    ]
    assert sum(m["quarantined"] for m in metrics) == sum(injected.values())
    assert sum(m["rows_out"] for m in metrics) == len(expected)
    reasons = Counter()
    for m in metrics:
        reasons.update(m["detail"]["quarantine_reasons"])
    assert sum(reasons.values()) == sum(injected.values())
