"""The simulator against a real local Kafka broker (the ``local_kafka`` session fixture).

Replays the real alerts of both surveys in 3 batches, consumes every message back and checks
that nothing is lost or duplicated and that the bytes are what each survey publishes. A
second test makes the broker refuse messages and checks that failures are reported.
"""

from __future__ import annotations

import io
import struct
import time
import uuid
from pathlib import Path
from typing import Any

import fastavro
import pytest

from fink_broker.simulator import cli
from fink_broker.simulator.replay import Injection, replay
from fink_broker.surveys import get_adapter

pytestmark = pytest.mark.integration


def _consume_all(bootstrap: str, topic: str, expected: int, timeout: float = 60.0) -> list[Any]:
    """Every message of ``topic`` from the beginning, until ``expected`` arrived."""
    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-simulator-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "fetch.message.max.bytes": 10 * 1024 * 1024,
        }
    )
    consumer.subscribe([topic])
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < expected and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            out.append(msg)
        # anything beyond the expected count would be a duplicate: give it a moment to show
        extra_deadline = time.monotonic() + 1.0
        while time.monotonic() < extra_deadline:
            msg = consumer.poll(0.2)
            if msg is not None and msg.error() is None:
                out.append(msg)
    finally:
        consumer.close()
    return out


def _decode(survey: str, value: bytes) -> dict[str, Any]:
    adapter = get_adapter(survey)
    if survey == "ztf":
        (record,) = list(fastavro.reader(io.BytesIO(value)))
        return record
    magic, schema_id = struct.unpack(">bI", value[:5])
    # the files are lsst.v9_0 alerts, replayed as published: behind v9's id
    assert (magic, schema_id) == (0, 900)
    (schema,) = [w.parsed for w in adapter.wire_schemas() if w.key == str(schema_id)]
    return fastavro.schemaless_reader(io.BytesIO(value[5:]), schema, None)


@pytest.mark.parametrize(("survey", "count"), [("ztf", 50), ("rubin", 100)])
def test_replay_in_three_batches_is_consumed_back_whole(
    local_kafka: Any, datasim: Path, survey: str, count: int
) -> None:
    topic = f"test_simulator_{survey}_{uuid.uuid4().hex[:8]}"
    progress: list[Any] = []
    summary = replay(
        local_kafka.settings,
        survey=survey,
        folder=datasim / survey,
        topic=topic,
        nbatches=3,
        partitions=2,
        progress=progress.append,
    )
    assert summary.ok, summary.format()
    assert summary.alerts == count
    assert summary.delivered == count
    assert summary.batches == 3
    assert [p.batch for p in progress] == [1, 2, 3]

    messages = _consume_all(local_kafka.bootstrap, topic, count)
    assert len(messages) == count
    keys = [m.key() for m in messages]
    assert len(set(keys)) == count
    alert_id = get_adapter(survey).alert_id
    for msg in messages:
        record = _decode(survey, msg.value())
        assert str(record[alert_id]).encode() == msg.key()
    assert sum(len(m.value()) for m in messages) == summary.bytes


def test_replay_with_repeat_and_injections_round_trips(local_kafka: Any, datasim: Path) -> None:
    topic = f"test_simulator_inject_{uuid.uuid4().hex[:8]}"
    inject = [Injection("garbage", 2), Injection("truncated", 2), Injection("unknown_schema", 2)]
    summary = replay(
        local_kafka.settings,
        survey="rubin",
        folder=datasim / "rubin",
        topic=topic,
        nalerts=150,
        repeat=2,
        rate=2000.0,
        inject=inject,
        seed=5,
    )
    assert summary.ok, summary.format()
    assert summary.bad == {"garbage": 2, "truncated": 2, "unknown_schema": 2}
    messages = _consume_all(local_kafka.bootstrap, topic, 156)
    assert len(messages) == 156
    assert len({m.key() for m in messages}) == 156
    bad = [m for m in messages if m.key().startswith(b"inject-")]
    assert len(bad) == 6
    for msg in messages:
        if not msg.key().startswith(b"inject-"):
            _decode("rubin", msg.value())


def test_refused_deliveries_are_counted_and_fail_the_cli(
    local_kafka: Any, datasim: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A topic that refuses messages over 1 kB: every alert fails, the exit code says so."""
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = f"test_simulator_refused_{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": local_kafka.bootstrap})
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=1, config={"max.message.bytes": "1024"})]
    )
    for future in futures.values():
        future.result(timeout=30)
    code = cli.main(
        [
            "--bootstrap",
            local_kafka.bootstrap,
            "--survey",
            "ztf",
            "--datasim",
            str(datasim / "ztf"),
            "--topic",
            topic,
            "--nalerts",
            "3",
        ]
    )
    out = capsys.readouterr().out
    assert code == cli.EXIT_FAILED
    assert "delivery errors 3" in out
    assert "MSG_SIZE_TOO_LARGE" in out
