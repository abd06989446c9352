"""``fink consume``: read Fink's outgoing topics as a subscriber does, print or save the alerts.

``fink consume fink_sn_candidates_ztf [--from-beginning] [--max N] [--timeout S] [--group G]
[--save DIR --format parquet|csv|avro]`` joins a consumer group (default
``fink-consume-<user>``, as fink-client names one per user), decodes each message in Fink's
outgoing format (the key holds the Avro writer schema as JSON, the value is the schemaless
record: the fink-client convention) and prints one summary line per alert, or writes the
alerts to files (:mod:`fink_broker.services.alert_files` says how each format keeps nested
fields). It stops after ``--max`` alerts or when no message arrived for ``--timeout`` seconds
(0: never), and on Ctrl-C.

Offsets are committed by Fink, not by librdkafka's timer, and only for alerts already
printed or written to disk: a second run with the same group continues where the first
stopped, an interrupted ``--save`` loses nothing (at-least-once). ``--from-beginning`` sets
``auto.offset.reset=earliest``, which, as for ``kafka-console-consumer``, applies only to a
group without committed offsets: use a new ``--group`` to read a topic again.

Outgoing topics live on the output cluster (``output_kafka``) when one is configured, else on
the input cluster (``kafka``); ``--bootstrap`` names a cluster explicitly and uses the
``kafka`` security options. A refused SASL login stops the command with a clear error
(:mod:`fink_broker.kafka_clients`) instead of waiting silently. Pure Python, no JVM.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import getpass
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from fink_broker.config import KafkaSettings, Settings
from fink_broker.kafka_clients import (
    MAX_MESSAGE_BYTES,
    connection_config,
    outgoing_kafka,
    redacted,
    with_auth_check,
)
from fink_broker.services.alert_display import (
    UndecodableError,
    format_brightness,
    summarize_record,
)
from fink_broker.services.outgoing_reader import OutgoingDecoder, WriterSchema

log = logging.getLogger(__name__)

#: seconds without any message after which ``fink consume`` stops (fink-client's maxtimeout)
DEFAULT_TIMEOUT_S = 10.0
#: messages fetched per ``consume`` call
BATCH = 500
#: longest wait inside one ``consume`` call, so Ctrl-C and the idle timeout are seen quickly
POLL_S = 0.5
#: seconds between two commits (files are flushed first); the end of a run always commits
COMMIT_INTERVAL_S = 10.0
#: undecodable messages logged one by one before the rest are only counted
MAX_LOGGED_ERRORS = 5
#: formats of ``--save`` (those of :mod:`.alert_files`, which is imported only when saving:
#: it loads pandas and pyarrow, and the ``fink`` parser is built for every command)
FORMATS = ("parquet", "csv", "avro")


@dataclass(frozen=True)
class ConsumedAlert:
    """One decoded alert and where it came from."""

    topic: str
    partition: int
    offset: int
    schema: WriterSchema
    record: dict[str, Any]


def default_group(kafka: KafkaSettings) -> str:
    """``fink-consume-<user>``: the SASL user if any, else the login name.

    One group per user (as fink-client) makes successive runs continue where the last one
    stopped, and two users of one account never steal each other's partitions.
    """
    user = kafka.sasl_username
    if not user:
        try:
            user = getpass.getuser()
        except (OSError, KeyError):  # no login name in some containers
            user = "user"
    return f"fink-consume-{user}"


def consumer_config(
    kafka: KafkaSettings,
    *,
    group: str,
    from_beginning: bool,
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Consumer properties: explicit commits only, large messages, fail fast on bad logins."""
    config = connection_config(kafka, env)
    config.update(
        {
            "group.id": group,
            "client.id": "fink-consume",
            "auto.offset.reset": "earliest" if from_beginning else "latest",
            # offsets are committed by Fink once alerts are printed or on disk
            "enable.auto.commit": False,
            "fetch.message.max.bytes": MAX_MESSAGE_BYTES,
            "allow.auto.create.topics": False,
        }
    )
    return with_auth_check(config)


@dataclass
class ConsumeStats:
    """What a run did; the CLI prints it at the end, tests read it."""

    alerts: int = 0
    undecodable: int = 0
    per_topic: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0
    #: why the run ended: max, timeout or interrupted
    reason: str = ""
    files: dict[Path, int] = field(default_factory=dict)


class AlertConsumer:
    """A subscribed consumer that decodes batches and commits what the caller has handled."""

    def __init__(
        self,
        kafka: KafkaSettings,
        topics: Sequence[str],
        *,
        group: str,
        from_beginning: bool = False,
        schema: Mapping[str, Any] | None = None,
    ) -> None:
        from confluent_kafka import Consumer

        config = consumer_config(kafka, group=group, from_beginning=from_beginning)
        log.debug("consumer config: %s", redacted(config))
        self.decoder = OutgoingDecoder(schema)
        self.last_activity = time.monotonic()
        self.undecodable = 0
        self._pending: dict[tuple[str, int], int] = {}
        self._warned: set[str] = set()
        self._consumer = Consumer(config)
        self._consumer.subscribe(list(topics), on_assign=self._on_assign)

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        # the idle clock starts once partitions are ours: joining a group takes a while
        self.last_activity = time.monotonic()
        log.info("assigned %s", ", ".join(f"{p.topic}[{p.partition}]" for p in partitions))

    def poll(self, timeout: float, limit: int | None = None) -> list[ConsumedAlert]:
        """Decoded alerts that arrive within ``timeout`` s, at most ``limit``.

        Messages after the ``limit``-th alert are dropped without being marked: the next
        run of the group reads them again. Undecodable messages are counted, logged (the
        first few, with topic/partition/offset) and skipped.
        """
        alerts: list[ConsumedAlert] = []
        batch = BATCH if limit is None else max(1, min(BATCH, limit))
        for msg in self._consumer.consume(batch, timeout):
            if msg.error() is not None:
                self._message_error(msg)
                continue
            if limit is not None and len(alerts) >= limit:
                break
            self.last_activity = time.monotonic()
            topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
            try:
                record, schema = self.decoder.decode(msg.key(), msg.value())
            except UndecodableError as err:
                self.undecodable += 1
                if self.undecodable <= MAX_LOGGED_ERRORS:
                    log.warning("undecodable %s[%d]@%d: %s", topic, partition, offset, err)
            else:
                alerts.append(ConsumedAlert(topic, partition, offset, schema, record))
            self._pending[(topic, partition)] = offset + 1
        return alerts

    def _message_error(self, msg: Any) -> None:
        from confluent_kafka import KafkaError

        err = msg.error()
        if err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
            if msg.topic() not in self._warned:
                self._warned.add(msg.topic())
                log.warning("topic %s does not exist (yet): %s", msg.topic(), err.str())
            return
        log.warning("consumer error on %s[%s]: %s", msg.topic(), msg.partition(), err.str())

    def commit(self) -> None:
        """Commit the offsets after every message handed out so far (synchronously)."""
        from confluent_kafka import KafkaException, TopicPartition

        if not self._pending:
            return
        offsets = [TopicPartition(t, p, o) for (t, p), o in self._pending.items()]
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as err:  # e.g. a partition moved to another member meanwhile
            log.warning("offset commit failed (alerts will be read again): %s", err)
            return
        self._pending.clear()

    def close(self) -> None:
        """Leave the group (its partitions go to the other members at once)."""
        self._consumer.close()

    def __enter__(self) -> AlertConsumer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run(
    kafka: KafkaSettings,
    topics: Sequence[str],
    handle: Callable[[list[ConsumedAlert]], None],
    *,
    flush: Callable[[], None] = lambda: None,
    from_beginning: bool = False,
    max_alerts: int | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    group: str | None = None,
    schema: Mapping[str, Any] | None = None,
    stop: threading.Event | None = None,
) -> ConsumeStats:
    """Consume ``topics`` and pass each batch of alerts to ``handle``.

    ``flush`` must make every handled alert durable (files written); it runs before each
    commit, so a committed offset never points past an alert that was not saved. Stops
    after ``max_alerts``, after ``timeout`` s without a message (0: never), when ``stop``
    is set or on KeyboardInterrupt. A refused login raises ``kafka_clients.KafkaAuthError``.
    """
    if not topics:
        raise ValueError("no topic to consume")
    stop = stop or threading.Event()
    stats = ConsumeStats()
    started = time.monotonic()
    group = group or default_group(kafka)
    log.info("consuming %s from %s as group %s", ", ".join(topics), kafka.bootstrap_servers, group)
    with AlertConsumer(
        kafka, topics, group=group, from_beginning=from_beginning, schema=schema
    ) as consumer:
        last_commit = time.monotonic()
        try:
            while True:
                if stop.is_set():
                    stats.reason = "interrupted"
                    break
                left = None if max_alerts is None else max_alerts - stats.alerts
                if left is not None and left <= 0:
                    stats.reason = "max"
                    break
                alerts = consumer.poll(POLL_S, left)
                if alerts:
                    handle(alerts)
                    stats.alerts += len(alerts)
                    for alert in alerts:
                        stats.per_topic[alert.topic] = stats.per_topic.get(alert.topic, 0) + 1
                if timeout > 0 and time.monotonic() - consumer.last_activity >= timeout:
                    stats.reason = "timeout"
                    break
                if time.monotonic() - last_commit >= COMMIT_INTERVAL_S:
                    flush()
                    consumer.commit()
                    last_commit = time.monotonic()
        except KeyboardInterrupt:
            stats.reason = "interrupted"
        # Not in a `finally`: after a failure (refused login, full disk) nothing is
        # committed, so the alerts of the failed batch are read again next time.
        stats.undecodable = consumer.undecodable
        flush()
        consumer.commit()
    stats.elapsed_s = time.monotonic() - started
    return stats


def consume(
    settings: Settings,
    topics: Sequence[str],
    *,
    from_beginning: bool = False,
    max_alerts: int | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    group: str | None = None,
) -> list[dict[str, Any]]:
    """The decoded alerts of ``topics`` as dicts (for tests and notebooks)."""
    records: list[dict[str, Any]] = []
    run(
        outgoing_kafka(settings),
        topics,
        lambda alerts: records.extend(a.record for a in alerts),
        from_beginning=from_beginning,
        max_alerts=max_alerts,
        timeout=timeout,
        group=group,
    )
    return records


def summary_line(alert: ConsumedAlert) -> str:
    """One line per alert: where it is, and its id, object, time, position and brightness.

    A topic that publishes a few columns only (no ZTF/Rubin fields) gets its field names.
    """
    where = f"{alert.topic} {alert.partition}:{alert.offset}"
    try:
        s = summarize_record(alert.record, framing="fink_outgoing", schema=alert.schema.name)
    except UndecodableError:
        names = ", ".join(list(alert.record)[:8])
        return f"{where}  {alert.schema.name}: {len(alert.record)} fields ({names})"
    parts = [
        where,
        s.survey or "",
        f"object={s.object_id}",
        f"alert={s.alert_id}",
        "" if s.mjd is None else f"mjd={s.mjd:.5f}",
        "" if s.ra is None else f"ra={s.ra:.6f}",
        "" if s.dec is None else f"dec={s.dec:+.6f}",
        format_brightness(s),
    ]
    return "  ".join(p for p in parts if p)


def _positive(kind: type[int] | type[float], zero_ok: bool) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        value = kind(text)
        if value < 0 or (value == 0 and not zero_ok):
            raise argparse.ArgumentTypeError(f"must be {'>= 0' if zero_ok else '> 0'}")
        return value

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``fink consume`` arguments."""
    parser.add_argument("topics", nargs="+", metavar="topic", help="Fink topic(s) to read")
    parser.add_argument(
        "--from-beginning",
        action="store_true",
        help="a group without committed offsets starts at the oldest alerts (default: newest)",
    )
    parser.add_argument("--max", type=_positive(int, False), help="stop after N alerts")
    parser.add_argument(
        "--timeout",
        type=_positive(float, True),
        default=DEFAULT_TIMEOUT_S,
        help=f"stop after S seconds without a message; 0 = never (default {DEFAULT_TIMEOUT_S:g})",
    )
    parser.add_argument("--group", help="consumer group (default fink-consume-<user>)")
    parser.add_argument("--save", metavar="DIR", help="write the alerts to files in DIR")
    parser.add_argument(
        "--format",
        choices=FORMATS,
        help="file format of --save (default parquet): parquet keeps nested fields, csv "
        "flattens records and JSON-encodes arrays, avro keeps the writer schema",
    )
    parser.add_argument("--schema", help="Avro schema file for messages whose key has none")
    parser.add_argument("--bootstrap", help="Kafka bootstrap servers (default: config)")


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT/SIGTERM end the run cleanly: files closed, offsets committed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, lambda *_: stop.set())
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_from_args(args: argparse.Namespace, settings: Settings, out: TextIO = sys.stdout) -> int:
    """Run ``fink consume`` with parsed ``args``; returns the exit code."""
    if args.format and not args.save:
        log.error("--format needs --save DIR")
        return 2
    kafka = outgoing_kafka(settings)
    if getattr(args, "bootstrap", None):
        kafka = copy.deepcopy(settings.kafka)
        kafka.bootstrap_servers = args.bootstrap
    schema = None
    if args.schema:
        try:
            schema = json.loads(Path(args.schema).read_text())
        except (OSError, ValueError) as err:
            log.error("cannot read the schema file %s: %s", args.schema, err)
            return 2
    files = None
    if args.save:
        from fink_broker.services.alert_files import AlertFiles

        files = AlertFiles(args.save, args.format or "parquet")

    def show(alerts: list[ConsumedAlert]) -> None:
        out.write("".join(summary_line(a) + "\n" for a in alerts))
        out.flush()

    def save(alerts: list[ConsumedAlert]) -> None:
        assert files is not None
        for a in alerts:
            files.add(a.topic, a.schema.key, a.schema.definition, a.record)

    stop = threading.Event()
    try:
        with _stop_on_signals(stop):
            stats = run(
                kafka,
                args.topics,
                save if files else show,
                flush=files.flush if files else (lambda: None),
                from_beginning=args.from_beginning,
                max_alerts=args.max,
                timeout=args.timeout,
                group=args.group,
                schema=schema,
                stop=stop,
            )
    except ValueError as err:  # e.g. SASL without a password: a usage error, not a trace
        log.error("consume: %s", err)
        return 2
    finally:
        if files is not None:
            saved = files.close()
    if files is not None:
        stats.files = saved
        for path, count in saved.items():
            print(f"saved {count} alerts to {path}", file=sys.stderr)
    print(
        f"consumed {stats.alerts} alerts ({stats.undecodable} undecodable) from "
        f"{', '.join(args.topics)} in {stats.elapsed_s:.1f} s; stopped: {stats.reason}",
        file=sys.stderr,
    )
    return 0
