"""checkstream against a real broker (the ``local_kafka`` session fixture).

Real alerts are produced to fresh topics at known partitions and offsets; the viewer must
count every message once, rate them, show the right last alerts, and compute the lag of a
consumer group (offsets committed here) and of stream2raw (a checkpoint written here) from
the broker's real high watermarks.
"""

from __future__ import annotations

import copy
import io
import json
import time
import uuid
from pathlib import Path
from typing import Any

import fastavro
import pytest

from fink_broker.config import Settings
from fink_broker.kafka_clients import ensure_topics
from fink_broker.services import checkstream
from fink_broker.services.alert_display import Report
from fink_broker.services.checkstream import Checkstream
from fink_broker.surveys import get_adapter
from fink_broker.surveys.base import iter_alert_files, read_alert_file

pytestmark = pytest.mark.integration

PARTITIONS = 2


def _settings(local_kafka: Any, tmp_path: Path, **checkstream_options: Any) -> Settings:
    settings = copy.deepcopy(local_kafka.settings)
    settings.paths.root = str(tmp_path / "lake")
    settings.checkstream.interval = checkstream_options.get("interval", 1.0)
    settings.checkstream.last = checkstream_options.get("last", 5)
    return settings


def _produce(bootstrap: str, topic: str, messages: list[tuple[bytes | None, bytes]]) -> dict:
    """Produce round-robin over the partitions; (partition, offset) -> key, from the acks."""
    from confluent_kafka import Producer

    placed: dict[tuple[int, int], bytes | None] = {}

    def on_delivery(err: Any, msg: Any) -> None:
        assert err is None, err
        placed[(msg.partition(), msg.offset())] = msg.key()

    producer = Producer({"bootstrap.servers": bootstrap, "message.max.bytes": 10 * 1024 * 1024})
    for i, (key, value) in enumerate(messages):
        producer.produce(
            topic, value=value, key=key, partition=i % PARTITIONS, on_delivery=on_delivery
        )
    assert producer.flush(60) == 0
    assert len(placed) == len(messages)
    return placed


def _commit(bootstrap: str, group: str, topic: str, offsets: dict[int, int]) -> None:
    """Commit offsets for ``group`` without joining it, as a stopped consumer would leave.

    A fresh broker loads ``__consumer_offsets`` for a few seconds and answers commits with
    coordinator errors meanwhile (load in progress, not coordinator), which this client
    does not retry by itself.
    """
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False}
    )
    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                consumer.commit(
                    offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()],
                    asynchronous=False,
                )
                return
            except KafkaException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
    finally:
        consumer.close()


def _until_total(view: Checkstream, total: int, timeout: float = 60.0) -> list[Report]:
    reports = [view.next_report()]
    deadline = time.monotonic() + timeout
    while reports[-1].total.messages < total and time.monotonic() < deadline:
        reports.append(view.next_report())
    return reports


def _ztf_messages(datasim: Path) -> list[tuple[bytes | None, bytes]]:
    adapter = get_adapter("ztf")
    out: list[tuple[bytes | None, bytes]] = []
    for path in iter_alert_files(datasim / "ztf"):
        record, _ = read_alert_file(path)
        out.append((str(record["candid"]).encode(), adapter.encode(record)))
    return out


def test_counts_rate_last_alerts_and_lags(local_kafka: Any, datasim: Path, tmp_path: Path) -> None:
    settings = _settings(local_kafka, tmp_path, last=6)
    topic = f"test_checkstream_{uuid.uuid4().hex[:8]}"
    ensure_topics(settings.kafka, [topic], PARTITIONS)
    messages = _ztf_messages(datasim)
    messages[10] = (b"inject-garbage-0", b"\x42 not an alert")
    placed = _produce(local_kafka.bootstrap, topic, messages)
    n = len(messages)
    highs = {p: sum(1 for q, _ in placed if q == p) for p in range(PARTITIONS)}
    group = f"test-checkstream-{uuid.uuid4().hex[:8]}"
    _commit(local_kafka.bootstrap, group, topic, {0: 10, 1: 3})
    # stream2raw's checkpoint: batch 4 planned up to these offsets, batch 3 done
    checkpoint = Path(settings.paths.root) / "checkpoints" / "ztf" / "stream2raw"
    (checkpoint / "offsets").mkdir(parents=True)
    (checkpoint / "commits").mkdir()
    for batch, ends in ((3, {"0": 5, "1": 5}), (4, {"0": 20, "1": 25})):
        meta = json.dumps({"batchWatermarkMs": 0, "batchTimestampMs": 1})
        (checkpoint / "offsets" / str(batch)).write_text(f"v1\n{meta}\n{json.dumps({topic: ends})}")
    (checkpoint / "commits" / "3").write_text('v1\n{"nextBatchWatermarkMs":0}')

    with Checkstream(settings, topic, from_beginning=True, group=group) as view:
        reports = _until_total(view, n)
        quiet = view.next_report()

    last = reports[-1]
    assert last.total.messages == n and sum(r.interval.messages for r in reports) == n
    assert (last.total.alerts, last.total.undecodable) == (n - 1, 1)
    assert max(r.rate for r in reports) > 0
    assert (quiet.interval.messages, quiet.rate, quiet.total.messages) == (0, 0.0, n)
    assert last.high_watermarks == highs

    group_lag = last.lag_of("group")
    assert group_lag is not None
    assert group_lag.next_offsets == {0: 10, 1: 3}
    assert group_lag.lag == {0: highs[0] - 10, 1: highs[1] - 3}
    assert group_lag.total == sum(highs.values()) - 13
    s2r = last.lag_of("stream2raw")
    assert s2r is not None
    assert (s2r.consumer, s2r.note) == ("stream2raw (ztf)", "batch 4 running")
    assert s2r.lag == {0: highs[0] - 20, 1: highs[1] - 25}

    # the last alerts are the newest messages read, each with the id produced at its offset
    assert len(last.last) == 6
    newest = last.last[-1]
    assert newest.offset == highs[newest.partition] - 1
    for summary in last.last:
        key = placed[(summary.partition, summary.offset)]
        if key == b"inject-garbage-0":
            assert not summary.ok and "unknown framing" in (summary.error or "")
        else:
            assert summary.ok and str(summary.alert_id).encode() == key
            assert summary.survey == "ztf" and summary.unit == "mag"


def test_live_start_sees_only_new_outgoing_alerts(
    local_kafka: Any, datasim: Path, tmp_path: Path
) -> None:
    """Default start is at the high watermarks; Fink's outgoing format is decoded too."""
    settings = _settings(local_kafka, tmp_path, last=3)
    topic = f"test_checkstream_out_{uuid.uuid4().hex[:8]}"
    ensure_topics(settings.kafka, [topic], PARTITIONS)
    alerts = [read_alert_file(p) for p in list(iter_alert_files(datasim / "rubin"))[:30]]

    def outgoing(record: dict[str, Any], schema: dict[str, Any]) -> tuple[bytes, bytes]:
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, fastavro.parse_schema(schema), record)
        return json.dumps(schema).encode(), buf.getvalue()

    _produce(local_kafka.bootstrap, topic, [outgoing(*a) for a in alerts[:10]])
    with Checkstream(settings, topic) as view:
        first = view.next_report()
        placed = _produce(local_kafka.bootstrap, topic, [outgoing(*a) for a in alerts[10:]])
        reports = _until_total(view, 20)
    assert first.total.messages == 0
    assert reports[-1].total.messages == reports[-1].total.alerts == 20
    assert sum(reports[-1].high_watermarks.values()) == 30
    ids = {a[0]["diaSourceId"] for a in alerts[10:]}
    assert all(s.framing == "fink_outgoing" and s.alert_id in ids for s in reports[-1].last)
    assert all(offset >= 5 for _, offset in placed)  # produced after the first 10
    assert "no checkpoint" in (reports[-1].lag_of("stream2raw").note)  # type: ignore[union-attr]


def test_run_prints_reports_and_waits_for_a_missing_topic(
    local_kafka: Any, datasim: Path, tmp_path: Path
) -> None:
    """A topic created after the start is read whole; run() stops after max_reports."""
    settings = _settings(local_kafka, tmp_path, interval=1.0, last=2)
    topic = f"test_checkstream_late_{uuid.uuid4().hex[:8]}"
    with Checkstream(settings, topic) as view:
        missing = view.next_report()
        ensure_topics(settings.kafka, [topic], PARTITIONS)
        _produce(local_kafka.bootstrap, topic, _ztf_messages(datasim)[:8])
        reports = _until_total(view, 8)
    assert "does not exist" in missing.note and missing.partitions == ()
    assert reports[-1].total.messages == 8 and not reports[-1].note

    out = io.StringIO()
    final = checkstream.run(settings, topic, from_beginning=True, max_reports=2, out=out)
    assert final is not None and final.number == 2 and final.total.messages == 8
    text = out.getvalue()
    assert text.count(f"] {topic}: ") == 2
    assert "high watermarks: 0: 4, 1: 4 (sum 8)" in text
    assert "partition:offset" in text and " mag" in text

    started = time.monotonic()
    checkstream.run(settings, topic, duration=1.5, out=io.StringIO())
    assert time.monotonic() - started < 10
