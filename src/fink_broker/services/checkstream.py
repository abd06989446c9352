"""checkstream: a live view of a Kafka topic, input or output alike.

``fink start checkstream [--simulator] [--topic T]`` prints, every ``checkstream.interval``
seconds, the messages of the interval and their rate, the per-partition high watermarks,
the lag of the consumers that matter, and the last ``checkstream.last`` alerts (id, time,
position, magnitude or flux). :mod:`fink_broker.services.alert_display` holds the pure
parts: message decoding in any framing, the :class:`Report` model and its text.

The viewer assigns every partition itself instead of joining a consumer group: it starts
at once (no rebalance), never takes partitions from the real consumers and never commits.
Lag is therefore read from the outside:

- ``--group G``: G's committed offsets (Kafka admin API) against the high watermarks;
- stream2raw: the next offsets in the newest ``offsets/<batchId>`` file of its Spark
  checkpoint, when that checkpoint reads this topic. Spark does not commit to Kafka, so
  the checkpoint is the only place where its progress is visible.

Pure Python (confluent-kafka, no JVM): it must start in a second on a laptop or a cluster
edge node.
"""

from __future__ import annotations

import argparse
import copy
import logging
import signal
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

from fink_broker.config import Settings
from fink_broker.kafka_clients import MAX_MESSAGE_BYTES, connection_config
from fink_broker.lake import is_local
from fink_broker.services.alert_display import (
    AlertDecoder,
    AlertSummary,
    Counts,
    Lag,
    PartitionOffsets,
    Report,
)
from fink_broker.services.stream_offsets import end_offsets, lag_of, stream2raw_positions
from fink_broker.services.streaming import input_topic
from fink_broker.surveys import SurveyAdapter, build_survey

log = logging.getLogger(__name__)

#: how long Kafka metadata and offset requests may take before a report says so
REQUEST_TIMEOUT_S = 10.0
#: longest single wait inside the loop, so signals and deadlines are honoured promptly
MAX_POLL_S = 0.5
#: messages fetched per consume() call
BATCH = 500


# --------------------------------------------------------------------------- lag


def lag_against(
    consumer: str, nexts: Mapping[int, int | None], highs: Mapping[int, int], note: str = ""
) -> Lag:
    """The :class:`Lag` of a consumer whose next offsets are ``nexts`` (None: unknown)."""
    mine = {p: nexts.get(p) for p in highs}
    return Lag(consumer, mine, lag_of(mine, highs), note)


def stream2raw_lag(settings: Settings, topic: str, highs: Mapping[int, int]) -> Lag:
    """stream2raw's lag on ``topic`` from its newest checkpoint offsets file.

    The configured survey's checkpoint is read first, then the other surveys' (one root can
    hold both), and only a checkpoint that reads ``topic`` gives numbers. ``offsets/N`` is
    written when batch N starts, so its offsets are where stream2raw will be once N is done;
    the note says whether N is committed yet.
    """
    root = settings.paths.root
    if not is_local(root):
        return Lag("stream2raw", note=f"checkpoint on {root} is not read by checkstream")
    positions = stream2raw_positions(settings)
    for position in positions:
        name = f"stream2raw ({position.survey})"
        if position.error:
            return Lag(name, note=f"checkpoint not readable: {position.error}")
        if topic not in position.offsets:
            continue
        state = "committed" if position.committed else "running"
        note = f"batch {position.batch} {state}"
        return lag_against(name, position.offsets[topic], highs, note)
    if positions:
        return Lag("stream2raw", note=f"its checkpoint does not read {topic}")
    return Lag("stream2raw", note=f"no checkpoint under {root}")


# --------------------------------------------------------------------------- the viewer


class Checkstream:
    """Consumes every partition of ``topic`` without a group and reports per interval.

    Use :meth:`next_report` (poll for one interval, then report) or :meth:`poll` and
    :meth:`report` separately; close with :meth:`close` or a ``with`` block.
    """

    def __init__(
        self,
        settings: Settings,
        topic: str,
        *,
        from_beginning: bool = False,
        group: str | None = None,
    ) -> None:
        from confluent_kafka import Consumer
        from confluent_kafka.admin import AdminClient

        self.settings = settings
        self.topic = topic
        self.from_beginning = from_beginning
        self.group = group
        self.interval = float(settings.checkstream.interval)
        self.decoder = AlertDecoder()
        config = connection_config(settings.kafka)
        config.update(
            {
                # required by librdkafka, but never used: assign() joins no group and
                # nothing is committed, so the id is private and leaves no trace
                "group.id": f"fink-checkstream-{uuid.uuid4().hex[:12]}",
                "client.id": "fink-checkstream",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "fetch.message.max.bytes": MAX_MESSAGE_BYTES,
            }
        )
        self._consumer = Consumer(config)
        # metadata and offsets go through the admin client: on the consumer's connection
        # they would queue behind the fetch long-poll (~0.5 s per request and partition).
        # Without the flag, asking for a missing topic's metadata would create it.
        self._admin = AdminClient(
            {**connection_config(settings.kafka), "allow.auto.create.topics": False}
        )
        self._assigned: set[int] = set()
        self._last: deque[AlertSummary] = deque(maxlen=max(0, settings.checkstream.last))
        self._counts, self._totals = Counts(), Counts()
        self._reports = 0
        self._since = time.monotonic()
        self._note = ""
        self._started = False
        self._refresh_partitions()
        # partitions found from now on (topic created or grown later) are read whole
        self._started = True

    # -- consuming

    def _refresh_partitions(self) -> list[int]:
        """Assign partitions not assigned yet (a topic may appear or grow while we watch)."""
        from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, TopicPartition

        try:
            metadata = self._admin.list_topics(self.topic, timeout=REQUEST_TIMEOUT_S)
        except Exception as err:  # KafkaException on timeout: keep watching, say it
            self._note = f"metadata unavailable: {err}"
            return sorted(self._assigned)
        info = metadata.topics.get(self.topic)
        if info is None or info.error is not None or not info.partitions:
            self._note = f"topic {self.topic} does not exist (yet)"
            return sorted(self._assigned)
        self._note = ""
        new = sorted(set(info.partitions) - self._assigned)
        if new:
            if self.from_beginning or self._started:
                starts = dict.fromkeys(new, OFFSET_BEGINNING)
            else:
                # "now" pinned when assigned: OFFSET_END is only resolved at the first
                # fetch, and messages produced in between would never be seen
                try:
                    starts = self._offsets(new, "high")
                except Exception as err:  # KafkaException on timeout: the lazy end then
                    log.warning("checkstream: end offsets unavailable (%s)", err)
                    starts = dict.fromkeys(new, OFFSET_END)
            self._consumer.incremental_assign(
                [TopicPartition(self.topic, p, starts[p]) for p in new]
            )
            self._assigned.update(new)
            log.info("checkstream: assigned %s partitions %s", self.topic, new)
        return sorted(self._assigned)

    def poll(self, timeout: float) -> int:
        """Consume what arrives within ``timeout`` seconds; returns the messages counted."""
        if not self._assigned:
            time.sleep(min(timeout, MAX_POLL_S))
            return 0
        n = 0
        for msg in self._consumer.consume(BATCH, timeout):
            if msg.error() is not None:
                log.warning("checkstream: %s [%s]: %s", msg.topic(), msg.partition(), msg.error())
                continue
            summary = self.decoder.summarize(
                msg.value(), msg.key(), partition=msg.partition(), offset=msg.offset()
            )
            if not summary.ok:
                log.debug("undecodable at %s:%s: %s", msg.partition(), msg.offset(), summary.error)
            self._counts.add(summary.ok)
            self._totals.add(summary.ok)
            self._last.append(summary)
            n += 1
        return n

    # -- reporting

    def _offsets(self, partitions: Iterable[int], end: Literal["low", "high"]) -> dict[int, int]:
        """Offset of each partition at its ``low`` or ``high`` watermark, in one admin
        request."""
        found = end_offsets(
            self._admin, ((self.topic, p) for p in partitions), end, REQUEST_TIMEOUT_S
        )
        return {p: offset for (_, p), offset in found.items()}

    def watermarks(self) -> tuple[PartitionOffsets, ...]:
        """Current low/high watermarks of every assigned partition, in two admin requests."""
        if not self._assigned:
            return ()
        ends = {name: self._offsets(self._assigned, name) for name in ("low", "high")}
        return tuple(
            PartitionOffsets(p, ends["low"][p], ends["high"][p]) for p in sorted(ends["high"])
        )

    def group_lag(self, highs: Mapping[int, int]) -> Lag:
        """The committed offsets of ``self.group`` against ``highs`` (admin API, no join)."""
        from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

        name = f"group {self.group}"
        request = ConsumerGroupTopicPartitions(
            self.group, [TopicPartition(self.topic, p) for p in sorted(highs)]
        )
        try:
            futures = self._admin.list_consumer_group_offsets(
                [request], request_timeout=REQUEST_TIMEOUT_S
            )
            result = futures[self.group].result(timeout=REQUEST_TIMEOUT_S)
        except Exception as err:  # KafkaException or timeout: a report line, not a crash
            return Lag(name, note=f"offsets unavailable: {err}")
        committed = {
            tp.partition: (tp.offset if tp.offset >= 0 else None)
            for tp in result.topic_partitions
            if tp.error is None
        }
        note = "" if any(v is not None for v in committed.values()) else "nothing committed"
        return lag_against(name, committed, highs, note)

    def report(self) -> Report:
        """Close the current interval: counts, rate, watermarks, lags and the last alerts."""
        now = time.monotonic()
        elapsed = max(now - self._since, 1e-9)
        self._refresh_partitions()
        partitions: tuple[PartitionOffsets, ...] = ()
        lags: list[Lag] = []
        note = self._note
        try:
            partitions = self.watermarks()
        except Exception as err:  # broker away: report what we know, keep going
            note = note or f"watermarks unavailable: {err}"
        highs = {p.partition: p.high for p in partitions}
        if self.group:
            lags.append(self.group_lag(highs))
        lags.append(stream2raw_lag(self.settings, self.topic, highs))
        self._reports += 1
        report = Report(
            topic=self.topic,
            number=self._reports,
            time=datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            elapsed_s=round(elapsed, 3),
            interval=self._counts,
            total=replace(self._totals),
            rate=self._counts.messages / elapsed,
            partitions=partitions,
            lags=tuple(lags),
            last=tuple(self._last),
            note=note,
        )
        self._counts, self._since = Counts(), now
        log.info("checkstream %s: report %d: %s", self.topic, report.number, report.interval)
        return report

    def next_report(
        self, stop: threading.Event | None = None, until: float | None = None
    ) -> Report:
        """Poll until the interval ends (or ``stop``, or monotonic ``until``), then report."""
        deadline = self._since + self.interval
        if until is not None:
            deadline = min(deadline, until)
        while (left := deadline - time.monotonic()) > 0 and not (stop and stop.is_set()):
            self.poll(min(left, MAX_POLL_S))
        return self.report()

    def close(self) -> None:
        """Leave the cluster; nothing to commit, nothing to revoke."""
        self._consumer.close()

    def __enter__(self) -> Checkstream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- CLI


def default_topic(settings: Settings, survey: SurveyAdapter | None = None) -> str:
    """``stream2raw.topic``, else the survey's default topic of tonight (UTC)."""
    return input_topic(settings, survey or build_survey(settings))


def run(
    settings: Settings,
    topic: str,
    *,
    from_beginning: bool = False,
    group: str | None = None,
    duration: float | None = None,
    max_reports: int | None = None,
    out: TextIO = sys.stdout,
) -> Report | None:
    """Print a report every interval until SIGTERM/SIGINT, ``duration`` or ``max_reports``.

    Returns the last report. When stopped by a signal or the duration, a last (shorter)
    interval is reported so that the final counts are on screen.
    """
    stop = threading.Event()
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():

        def on_signal(signum: int, _frame: Any) -> None:
            log.info("checkstream: signal %d, stopping", signum)
            stop.set()

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    until = None if duration is None else time.monotonic() + duration
    last: Report | None = None
    try:
        with Checkstream(settings, topic, from_beginning=from_beginning, group=group) as view:
            out.write(
                f"checkstream: {topic} on {settings.kafka.bootstrap_servers}, "
                f"every {view.interval:g} s{' from the beginning' if from_beginning else ''}\n"
            )
            while True:
                last = view.next_report(stop, until)
                out.write(last.render() + "\n\n")
                out.flush()
                if max_reports is not None and last.number >= max_reports:
                    break
                if stop.is_set() or (until is not None and time.monotonic() >= until):
                    break
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return last


def _at_least(kind: type[int] | type[float], minimum: float) -> Any:
    """An argparse ``type`` that refuses values below ``minimum``."""

    def parse(text: str) -> int | float:
        value = kind(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the checkstream options; ``--simulator`` is the ``fink`` CLI's own flag.

    Options that the parent command already defines (``--topic``, ``--bootstrap``) are
    not added twice: argparse refuses duplicates.
    """
    existing = set(parser._option_string_actions)  # argparse offers no public lookup

    def add(flag: str, **kwargs: Any) -> None:
        if flag not in existing:
            parser.add_argument(flag, **kwargs)

    add("--topic", help="topic to watch (default: stream2raw.topic, else the survey's topic)")
    add(
        "--interval",
        type=_at_least(float, 0.1),
        help="seconds between reports (checkstream.interval)",
    )
    add("--last", type=_at_least(int, 0), help="recent alerts shown (checkstream.last)")
    add(
        "--from-beginning",
        action="store_true",
        help="start at the oldest offsets instead of the newest",
    )
    add("--group", help="also show the lag of this consumer group (committed offsets)")
    add("--duration", type=_at_least(float, 0), help="stop after this many seconds")
    add("--max-reports", type=_at_least(int, 1), help="stop after this many reports")
    add("--bootstrap", help="Kafka bootstrap servers (kafka.bootstrap_servers)")


def run_from_args(
    args: argparse.Namespace,
    settings: Settings,
    survey: SurveyAdapter | None = None,
    out: TextIO = sys.stdout,
) -> int:
    """Apply the flags over ``settings`` (a copy) and run; returns the exit code.

    ``survey`` is the adapter the CLI built from the same flags (else built here)."""
    settings = copy.deepcopy(settings)
    if getattr(args, "bootstrap", None):
        settings.kafka.bootstrap_servers = args.bootstrap
    if getattr(args, "interval", None) is not None:
        settings.checkstream.interval = args.interval
    if getattr(args, "last", None) is not None:
        settings.checkstream.last = args.last
    if getattr(args, "survey", None):
        settings.stream2raw.survey = args.survey
    topic = getattr(args, "topic", None) or default_topic(settings, survey)
    try:
        run(
            settings,
            topic,
            from_beginning=bool(getattr(args, "from_beginning", False)),
            group=getattr(args, "group", None),
            duration=getattr(args, "duration", None),
            max_reports=getattr(args, "max_reports", None),
            out=out,
        )
    except ValueError as err:  # e.g. SASL without a password: a usage error, not a trace
        log.error("checkstream: %s", err)
        return 2
    return 0
