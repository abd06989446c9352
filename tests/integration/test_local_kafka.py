"""The local KRaft broker: messages round-trip, `fink show` sees it, `fink stop` ends it."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
import pytest
from confluent_kafka import Consumer, Message, Producer

from fink_broker.config import Settings
from fink_broker.infra import kafka_local, processes
from fink_broker.kafka_clients import TopicsRefused, ensure_topics

pytestmark = pytest.mark.integration


def _consume(bootstrap: str, topic: str, count: int, timeout: float = 30.0) -> list[Message]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    messages: list[Message] = []
    deadline = time.monotonic() + timeout
    try:
        while len(messages) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            messages.append(msg)
    finally:
        consumer.close()
    return messages


def test_message_round_trip(local_kafka: Any) -> None:
    topic = f"test_roundtrip_{uuid.uuid4().hex[:8]}"  # auto-created with num.partitions
    # Alerts with cutouts are ~150 kB and are batched: the broker must take a 2 MiB message.
    big = bytes(range(256)) * (8 * 1024)
    producer = Producer({"bootstrap.servers": local_kafka.bootstrap, "message.max.bytes": 4 << 20})
    producer.produce(topic, key=b"ZTF18aaaaaaa", value=b"alert-1")
    producer.produce(topic, key=b"ZTF18aaaaaab", value=big)
    assert producer.flush(30) == 0

    messages = _consume(local_kafka.bootstrap, topic, 2)
    assert sorted((m.key(), len(m.value())) for m in messages) == [
        (b"ZTF18aaaaaaa", 7),
        (b"ZTF18aaaaaab", len(big)),
    ]
    topics = producer.list_topics(topic, timeout=10).topics
    assert len(topics[topic].partitions) == local_kafka.settings.local_kafka.partitions


def test_running_lists_the_broker_with_its_ports(local_kafka: Any) -> None:
    (record,) = [r for r in processes.running(local_kafka.settings) if r.name == "kafka"]
    lk = local_kafka.settings.local_kafka
    assert record.pid == local_kafka.record.pid
    assert record.ports == [lk.port, lk.controller_port]
    assert record.extra["bootstrap"] == local_kafka.bootstrap
    assert Path(record.log_path or "").is_file()
    assert processes.usage(record, interval=0.05)["rss_mib"] > 50  # a JVM
    assert kafka_local.kafka_ready(local_kafka.bootstrap, timeout=5)
    with pytest.raises(processes.AlreadyRunningError):
        kafka_local.start_kafka(local_kafka.settings)


def test_stop_removes_the_record_and_the_process(fresh_kafka_settings: Settings) -> None:
    # its own broker: stopping the session one would break the other tests
    settings = fresh_kafka_settings
    record = kafka_local.start_kafka(settings)
    bootstrap = kafka_local.local_bootstrap(settings)
    assert [r.name for r in processes.running(settings)] == ["kafka"]

    started = time.monotonic()
    assert kafka_local.stop_kafka(settings, timeout=30) is True
    assert time.monotonic() - started < 25  # a clean shutdown, not the SIGKILL fallback
    assert processes.running(settings) == []
    assert not processes.pid_file(settings, "kafka").exists()
    assert not psutil.pid_exists(record.pid)
    assert not kafka_local.kafka_ready(bootstrap, timeout=1)
    assert kafka_local.stop_kafka(settings) is False
    server_log = Path(record.extra["server_log"]).read_text()
    assert "Shutdown completed" in server_log  # logged to the end: log4j outlives Kafka's hook


def test_a_port_taken_by_someone_else_is_refused(fresh_kafka_settings: Settings) -> None:
    settings = fresh_kafka_settings
    with socket.socket() as foreign:
        foreign.bind(("127.0.0.1", settings.local_kafka.port))
        foreign.listen()
        with pytest.raises(kafka_local.KafkaStartError, match="already in use"):
            kafka_local.start_kafka(settings)
    assert processes.running(settings) == []


def test_foreground_broker_is_recorded_and_stopped(fresh_kafka_settings: Settings) -> None:
    """`fink start kafka --foreground`: the Python process becomes the broker (exec)."""
    settings = fresh_kafka_settings
    code = textwrap.dedent(
        f"""
        from fink_broker.config import load_settings
        from fink_broker.infra.kafka_local import start_kafka
        start_kafka(load_settings(None, env={{}}, overrides={_overrides(settings)!r}),
                    foreground=True)
        """
    )
    # not a session leader: stop must signal this process alone, not pytest's process group
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL)
    try:
        bootstrap = kafka_local.local_bootstrap(settings)
        deadline = time.monotonic() + 60
        while not kafka_local.kafka_ready(bootstrap, timeout=1):
            assert child.poll() is None, "the foreground broker exited"
            assert time.monotonic() < deadline, "the foreground broker never became ready"
        (record,) = processes.running(settings)
        assert record.pid == child.pid
        assert record.argv[-2:] == [
            "kafka.Kafka",
            str(kafka_local.kafka_dir(settings) / "server.properties"),
        ]
        assert psutil.Process(child.pid).cmdline() == record.argv

        assert processes.stop(settings, "kafka", timeout=30) is True
        assert child.wait(5) in (0, 143)  # the JVM exits cleanly on SIGTERM
        assert processes.running(settings) == []
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def _overrides(settings: Settings) -> dict[str, object]:
    return {
        "paths.state_dir": settings.paths.state_dir,
        "paths.jar_cache": settings.paths.jar_cache,
        "local_kafka.port": settings.local_kafka.port,
        "local_kafka.controller_port": settings.local_kafka.controller_port,
    }


def test_a_refused_topic_creation_names_the_topics_to_create(local_kafka: Any) -> None:
    settings = Settings()
    settings.kafka.bootstrap_servers = local_kafka.bootstrap
    fine = f"fink_refusal_ok_{uuid.uuid4().hex[:8]}"
    refused = "fink_" + "x" * 300  # longer than the 249 characters a topic name may have
    with pytest.raises(TopicsRefused) as error:
        ensure_topics(settings.kafka, [fine, refused])
    assert error.value.topics == [refused]
    assert refused in str(error.value) and "Create them on the cluster" in str(error.value)
    assert not error.value.transient  # a supervised distribution stops on it
    assert ensure_topics(settings.kafka, [fine]) == []  # the valid one was created
