"""Consumer lag on the input topics, and messages per output topic, from Kafka's admin API.

Lag: stream2raw's position is the offsets file of its newest micro-batch in its Spark
checkpoint (Spark commits nothing to Kafka), compared with the end offsets of the topics
that checkpoint reads (:mod:`fink_broker.services.stream_offsets`, as ``checkstream``).
The offsets of batch N are where stream2raw will stand once N is committed, so while N
runs the lag shown is what is left after it.

Output topics: every topic of the output cluster whose name starts with
``distribution.topic_prefix``; its messages are the high watermark (published since the
topic was created) and the high minus the low watermark (held now, after retention).

All of it is metadata and offset requests on one admin client per cluster: the dashboard
neither consumes nor joins a group, so it changes nothing for the services.
"""

from __future__ import annotations

import logging
from typing import Any

from fink_broker.config import KafkaSettings, Settings
from fink_broker.kafka_clients import connection_config, outgoing_kafka, redacted
from fink_broker.services.stream_offsets import end_offsets, lag_of, stream2raw_positions

log = logging.getLogger(__name__)


class KafkaView:
    """Reads lag and topic sizes; a cluster that does not answer becomes a note, not an error."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.timeout = float(settings.dashboard.request_timeout_s)
        self._admins: dict[str, Any] = {}

    def _admin(self, kafka: KafkaSettings) -> Any:
        from confluent_kafka.admin import AdminClient

        key = kafka.bootstrap_servers
        if key not in self._admins:
            config = {
                **connection_config(kafka),
                "allow.auto.create.topics": False,
                # a broker that is away is the panel's note; librdkafka would log each
                # reconnection attempt (every 50-100 ms) to stderr
                "log_level": 2,
            }
            log.info("dashboard: Kafka admin client %s", redacted(config))
            self._admins[key] = AdminClient(config)
        return self._admins[key]

    def _partitions(self, admin: Any) -> dict[str, list[int]]:
        """Topic -> partitions of every topic of the cluster (one metadata request)."""
        metadata = admin.list_topics(timeout=self.timeout)
        return {
            name: sorted(info.partitions)
            for name, info in metadata.topics.items()
            if info.error is None and info.partitions
        }

    def input_lag(self) -> dict[str, Any]:
        """stream2raw's lag per survey and topic (or why it cannot be read)."""
        kafka = self.settings.kafka
        positions = stream2raw_positions(self.settings)
        out: dict[str, Any] = {"cluster": kafka.bootstrap_servers, "topics": [], "note": ""}
        if not positions:
            out["note"] = f"no stream2raw checkpoint under {self.settings.paths.root}"
            return out
        try:
            admin = self._admin(kafka)
            on_cluster = self._partitions(admin)
            wanted = {t for p in positions for t in p.offsets if t in on_cluster}
            pairs = [(t, p) for t in wanted for p in on_cluster[t]]
            highs = end_offsets(admin, pairs, "high", self.timeout)
        except Exception as err:  # KafkaException, timeout: the panel says it
            out["note"] = f"Kafka at {kafka.bootstrap_servers} did not answer: {err}"
            return out
        for position in positions:
            if position.error:
                out["topics"].append(
                    {"survey": position.survey, "topic": None, "note": position.error}
                )
                continue
            for topic, nexts in sorted(position.offsets.items()):
                topic_highs = {p: o for (t, p), o in highs.items() if t == topic}
                lags = lag_of(nexts, topic_highs)
                known_lags = [v for v in lags.values() if v is not None]
                out["topics"].append(
                    {
                        "survey": position.survey,
                        "topic": topic,
                        "batch": position.batch,
                        "committed": position.committed,
                        "partitions": len(topic_highs),
                        "end": sum(topic_highs.values()),
                        "position": sum(v for v in nexts.values()),
                        "lag": sum(known_lags) if known_lags else None,
                        "unread_partitions": sum(v is None for v in lags.values()),
                        "note": "" if topic_highs else f"{topic} is not on the cluster",
                    }
                )
        return out

    def output_topics(self) -> dict[str, Any]:
        """Messages per output topic (published and held), by name."""
        kafka = outgoing_kafka(self.settings)
        prefix = self.settings.distribution.topic_prefix
        out: dict[str, Any] = {"cluster": kafka.bootstrap_servers, "topics": [], "note": ""}
        try:
            admin = self._admin(kafka)
            topics = {t: p for t, p in self._partitions(admin).items() if t.startswith(prefix)}
            pairs = [(t, p) for t, parts in topics.items() for p in parts]
            highs = end_offsets(admin, pairs, "high", self.timeout)
            lows = end_offsets(admin, pairs, "low", self.timeout)
        except Exception as err:  # KafkaException, timeout: the panel says it
            out["note"] = f"Kafka at {kafka.bootstrap_servers} did not answer: {err}"
            return out
        for topic in sorted(topics):
            high = sum(o for (t, _), o in highs.items() if t == topic)
            low = sum(o for (t, _), o in lows.items() if t == topic)
            out["topics"].append(
                {
                    "topic": topic,
                    "partitions": len(topics[topic]),
                    "published": high,
                    "held": high - low,
                }
            )
        if not topics:
            out["note"] = f"no topic named {prefix}* yet"
        return out

    def read(self) -> dict[str, Any]:
        """Both panels, each with its own note when its cluster is away."""
        return {"input": self.input_lag(), "output": self.output_topics()}
