"""Reading filter topics back, and what each filter should have put in them.

Shared by the distribution tests, the fault run and the cluster tier: the topic bytes as
Kafka holds them, decoded with their key (the writer schema), and the selection each filter
makes when it is run directly on the science archive, the reference a topic is checked
against.
"""

from __future__ import annotations

import io
import json
from typing import Any

import fastavro
from confluent_kafka import Consumer, TopicPartition

from fink_broker.config import Settings
from fink_broker.engine.canonical import canonical_columns
from fink_broker.engine.filters import filter_inputs
from fink_broker.lake import Lake
from fink_broker.plugins.filters import run_filter, topic_name
from fink_broker.services import distribution
from fink_broker.surveys import get_adapter
from fink_broker.surveys.fields import CANONICAL_NAMES


def read_topic(bootstrap: str, topic: str) -> list[tuple[bytes, bytes]]:
    """Every (key, value) of ``topic``, from the start to the end offsets (raw bytes)."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "t", "enable.auto.commit": False}
    )
    try:
        meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if meta is None or meta.error is not None:
            return []
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p))[1] for p in meta.partitions
        }
        consumer.assign([TopicPartition(topic, p, 0) for p in meta.partitions])
        out: list[tuple[bytes, bytes]] = []
        while len(out) < sum(ends.values()):
            for msg in consumer.consume(500, timeout=5):
                assert msg.error() is None, msg.error()
                out.append((msg.key(), msg.value()))
        return out
    finally:
        consumer.close()


def decode(key: bytes, value: bytes) -> dict:
    """One topic message as a record: Fink's key is the writer schema of its value."""
    schema = fastavro.parse_schema(json.loads(key))
    return fastavro.schemaless_reader(io.BytesIO(value), schema)


def expected_topics(spark: Any, settings: Settings, survey: str) -> dict[str, set]:
    """Topic -> ids its filter selects in the science archive (the filter run directly)."""
    adapter = get_adapter(survey)
    science = spark.read.parquet(Lake(settings.paths.root, survey).science)
    filters = distribution.selected_filters(settings, survey)
    names = filter_inputs(filters)
    inputs = canonical_columns(
        science, survey, [n for n in names if n in CANONICAL_NAMES and n not in science.columns]
    )
    frame = science.select(
        adapter.alert_id,
        *[c.alias(n) for n, c in inputs.items()],
        *[n for n in names if n not in inputs],
    ).toPandas()
    out = {}
    for f in filters:
        topic = topic_name(f, adapter.topic_suffix, prefix=settings.distribution.topic_prefix)
        out[topic] = set(frame.loc[run_filter(f, frame[list(f.inputs)]), adapter.alert_id])
    return out
