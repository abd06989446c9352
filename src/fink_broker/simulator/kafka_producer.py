"""Kafka side of the simulator: producer configuration, topic creation and delivery accounting.

The connection and security options come from :mod:`fink_broker.kafka_clients`, shared with
``checkstream`` and ``fink consume`` (``connection_config`` and ``redacted`` are re-exported
here for existing callers): the SASL password is read from an environment variable or a
file, never from argv, and only :func:`redacted` configs are logged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from confluent_kafka import KafkaException

from fink_broker.config import KafkaSettings
from fink_broker.kafka_clients import (
    LINGER_MS,
    MAX_MESSAGE_BYTES,
    connection_config,
    producer_delivery,
    redacted,
)

log = logging.getLogger(__name__)

#: librdkafka compression codecs accepted by ``--compression``
COMPRESSIONS = ("none", "gzip", "snappy", "lz4", "zstd")


def producer_config(
    kafka: KafkaSettings,
    *,
    compression: str = "none",
    client_id: str = "fink-simulator",
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Producer properties tuned for replaying large alerts.

    ``linger.ms`` of 20 lets librdkafka group messages of a batch into few requests without
    a visible delay; compression is off by default because cutouts are already gzipped (ZTF)
    or poorly compressible, and a survey's stream is uncompressed too. Acknowledgements,
    idempotence and retry timeouts come from the settings (``producer_delivery``): a replay
    into a replicated cluster loses nothing and writes nothing twice when a broker dies.
    """
    if compression not in COMPRESSIONS:
        raise ValueError(f"compression {compression!r} is not one of {', '.join(COMPRESSIONS)}")
    config = connection_config(kafka, env)
    config.update(
        {
            "client.id": client_id,
            "message.max.bytes": MAX_MESSAGE_BYTES,
            "linger.ms": LINGER_MS,
            "compression.type": compression,
            # a dead cluster surfaces as counted delivery errors after delivery_timeout_ms
            **producer_delivery(kafka),
        }
    )
    return config


class ProducerLike(Protocol):
    """The part of ``confluent_kafka.Producer`` the replay uses (a fake in unit tests)."""

    def produce(self, topic: str, value: bytes, key: bytes, on_delivery: Any) -> None: ...

    def poll(self, timeout: float) -> int: ...

    def flush(self, timeout: float) -> int: ...

    def __len__(self) -> int: ...


@dataclass
class DeliveryTracker:
    """Counts delivery reports: a failed delivery is a result to report, never ignored."""

    delivered: int = 0
    failed: int = 0
    #: the first few errors, with key and topic, for the summary
    samples: list[str] = field(default_factory=list)
    max_samples: int = 5

    def __call__(self, err: Any, msg: Any) -> None:
        """The ``on_delivery`` callback (runs inside ``poll``/``flush``)."""
        if err is None:
            self.delivered += 1
            return
        where = f"topic={msg.topic()} key={msg.key()!r}" if msg is not None else "unknown message"
        self.fail(where, err)

    def fail(self, where: str, err: Any) -> None:
        """Count one failed message; keep (and log) the first few reasons."""
        self.failed += 1
        if len(self.samples) < self.max_samples:
            self.samples.append(f"{where}: {err}")
            log.warning("delivery failed: %s: %s", where, err)


def produce(
    producer: ProducerLike, topic: str, key: bytes, value: bytes, tracker: DeliveryTracker
) -> None:
    """Produce one message, waiting for room when librdkafka's local queue is full.

    A full queue means the broker is slower than we hand messages over; serving delivery
    reports with ``poll`` frees room, and dropping the message instead would skew the test.
    A message refused locally (e.g. larger than ``message.max.bytes``) is counted as a
    failed delivery, like a refusal by the broker, instead of aborting the replay.
    """
    while True:
        try:
            producer.produce(topic, value=value, key=key, on_delivery=tracker)
            return
        except BufferError:
            producer.poll(0.05)
        except KafkaException as err:
            tracker.fail(f"topic={topic} key={key!r} ({len(value)} bytes)", err.args[0])
            return


def poll_until(producer: ProducerLike, when: float) -> None:
    """Wait until monotonic time ``when`` inside ``poll``, so delivery reports keep flowing
    while a batch waits for its start time."""
    while (left := when - time.monotonic()) > 0:
        producer.poll(min(left, 0.1))


def flush(producer: ProducerLike, tracker: DeliveryTracker, timeout: float = 180.0) -> int:
    """Flush until every message has a delivery report; count the rest as failed.

    ``message.timeout.ms`` bounds each message, so the deadline only guards against a hung
    client. Returns the number of messages still without a report.
    """
    deadline = time.monotonic() + timeout
    remaining = producer.flush(min(timeout, 1.0))
    while remaining and time.monotonic() < deadline:
        remaining = producer.flush(1.0)
    if remaining:
        tracker.failed += remaining
        tracker.samples.append(
            f"{remaining} message(s) without a delivery report after {timeout} s"
        )
        log.error("%d message(s) still undelivered after %.0f s", remaining, timeout)
    return remaining


def new_producer(config: Mapping[str, Any]) -> ProducerLike:
    """A ``confluent_kafka.Producer`` (a function, so tests can pass a fake instead)."""
    from confluent_kafka import Producer

    log.debug("producer config: %s", redacted(config))
    return Producer(dict(config))
