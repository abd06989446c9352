"""Replay a folder of alert files into a Kafka topic, as the survey itself publishes them.

The engine has no argparse: the CLI (``simulator.cli``) and tests call :func:`replay`.
Messages are the survey adapter's exact wire bytes (``adapter.encode``): a whole Avro
container file per message for ZTF, Confluent wire format for Rubin.

Memory: each file is read and encoded once; the encoded bytes of copy 0 are cached. Repeat
copies ``k > 0`` (``--repeat``) are re-encoded from ``adapter.with_fresh_ids(record, k)``
lazily, one message at a time, so a folder replayed into 20 000 alerts never sits in memory
as 20 000 encoded messages. Records are kept only when repeat copies need them. Copies also
get distinct cutout pixels (``simulator.stamps``) unless ``same_cutouts`` is set: repeated
stamps make the archive's compression look cheaper than real alerts do.
"""

from __future__ import annotations

import itertools
import json
import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fink_broker.config import Settings
from fink_broker.kafka_clients import ensure_topics
from fink_broker.simulator import bad_messages
from fink_broker.simulator import kafka_producer as kp
from fink_broker.simulator.bad_messages import INJECTION_KINDS, InjectionKind
from fink_broker.simulator.stamps import DistinctStamps
from fink_broker.simulator.versions import convert
from fink_broker.surveys import SurveyAdapter, build_survey
from fink_broker.surveys.base import (
    WireSchema,
    container_bytes,
    default_topic,
    iter_alert_files,
    read_alert_records,
    schema_fingerprint,
)

log = logging.getLogger(__name__)

#: rate mode: how often the token bucket is checked, and how many seconds of tokens it
#: may hold (a short burst absorbs scheduling jitter without exceeding the target rate)
RATE_TICK_SECONDS = 0.002
RATE_BURST_SECONDS = 0.05


@dataclass(frozen=True)
class Injection:
    """``count`` bad messages of one kind, interleaved with the alerts (quarantine tests)."""

    kind: InjectionKind
    count: int

    def __post_init__(self) -> None:
        if self.kind not in INJECTION_KINDS:
            raise ValueError(
                f"unknown injection {self.kind!r}; known: {', '.join(INJECTION_KINDS)}"
            )
        if self.count < 0:
            raise ValueError(f"injection count must be >= 0, got {self.count}")


@dataclass(frozen=True)
class Progress:
    """Where a running replay stands; passed to the ``progress`` callable."""

    sent: int
    total: int
    elapsed: float
    batch: int
    nbatches: int

    @property
    def rate(self) -> float:
        """Messages per second so far."""
        return self.sent / self.elapsed if self.elapsed > 0 else 0.0

    def format(self) -> str:
        """One progress line, e.g. ``batch 2/3: 100/150 messages, 812.4 msg/s``."""
        return (
            f"batch {self.batch}/{self.nbatches}: {self.sent}/{self.total} messages, "
            f"{self.rate:.1f} msg/s, {self.elapsed:.1f} s"
        )


@dataclass
class ReplaySummary:
    """What a replay did; the CLI prints :meth:`format` and exits non-zero unless :attr:`ok`."""

    survey: str
    topic: str
    #: real alerts handed to the producer
    alerts: int = 0
    #: bad messages per injection kind
    bad: dict[str, int] = field(default_factory=dict)
    #: bytes of all message values (alerts and bad messages)
    bytes: int = 0
    batches: int = 0
    elapsed: float = 0.0
    #: delivery reports: successes and failures (incl. messages never acknowledged)
    delivered: int = 0
    delivery_errors: int = 0
    errors: list[str] = field(default_factory=list)
    #: encoding work: messages encoded and seconds spent in ``adapter.encode``
    encoded: int = 0
    encode_seconds: float = 0.0

    @property
    def bad_total(self) -> int:
        """All injected messages."""
        return sum(self.bad.values())

    @property
    def messages(self) -> int:
        """Alerts plus bad messages."""
        return self.alerts + self.bad_total

    @property
    def alerts_per_s(self) -> float:
        """Achieved alert rate over the whole run (waits between batches included)."""
        return self.alerts / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def mb_per_s(self) -> float:
        """Achieved throughput in MB/s (10**6 bytes)."""
        return self.bytes / 1e6 / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def encode_rate(self) -> float:
        """Alerts encoded per second of encoding (the simulator's own ceiling)."""
        return self.encoded / self.encode_seconds if self.encode_seconds > 0 else 0.0

    @property
    def ok(self) -> bool:
        """Every message was acknowledged by the broker."""
        return self.delivery_errors == 0 and self.delivered == self.messages

    def format(self) -> str:
        """Human summary, several lines."""
        bad = ", ".join(f"{k}={v}" for k, v in self.bad.items() if v) or "none"
        lines = [
            f"replayed {self.alerts} {self.survey} alerts into {self.topic} "
            f"in {self.batches} batch(es), {self.elapsed:.2f} s",
            f"  bad messages: {bad}",
            f"  {self.bytes / 1e6:.1f} MB, {self.alerts_per_s:.1f} alerts/s, "
            f"{self.mb_per_s:.1f} MB/s",
            f"  encoded {self.encoded} alerts at {self.encode_rate:.0f} alerts/s",
            f"  delivered {self.delivered}/{self.messages}, delivery errors {self.delivery_errors}",
        ]
        lines += [f"  error: {e}" for e in self.errors]
        return "\n".join(lines)


def plan_batches(total: int, nbatches: int) -> list[range]:
    """Split ``total`` messages into ``nbatches`` contiguous batches as evenly as possible.

    The first batches take the remainder, so sizes differ by at most one.

    >>> [len(b) for b in plan_batches(10, 3)]
    [4, 3, 3]
    >>> plan_batches(2, 4)
    [range(0, 1), range(1, 2), range(2, 2), range(2, 2)]
    """
    if nbatches < 1:
        raise ValueError(f"nbatches must be >= 1, got {nbatches}")
    if total < 0:
        raise ValueError(f"total must be >= 0, got {total}")
    size, extra = divmod(total, nbatches)
    out, start = [], 0
    for i in range(nbatches):
        stop = start + size + (1 if i < extra else 0)
        out.append(range(start, stop))
        start = stop
    return out


def batch_start(t0: float, index: int, interval: float) -> float:
    """Clock time at which batch ``index`` starts: batches are anchored on ``t0``, not on
    the end of the previous batch, so slow sends do not make the schedule drift.

    >>> batch_start(100.0, 3, 2.5)
    107.5
    """
    return t0 + index * interval


class TokenBucket:
    """Token bucket for ``--rate``: ``rate`` tokens per second, at most ``capacity`` held.

    >>> b = TokenBucket(rate=100.0, capacity=5.0, now=0.0)
    >>> b.take(0.02), b.take(0.02), b.take(1.0)
    (2, 0, 5)
    """

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be > 0, got {rate}")
        self.rate = rate
        self.capacity = max(1.0, capacity)
        self.tokens = 0.0
        self.last = now

    def take(self, now: float) -> int:
        """Refill for the time since the last call and take every whole token."""
        self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
        self.last = now
        whole = int(self.tokens)
        self.tokens -= whole
        return whole


def interleave(
    n_alerts: int, injections: Sequence[Injection], seed: int
) -> dict[int, InjectionKind]:
    """Positions (in the whole message sequence) of the bad messages, and their kind.

    Deterministic for a seed, spread uniformly among the alerts.

    >>> bad = [Injection("garbage", 2)]
    >>> interleave(3, bad, seed=1) == interleave(3, bad, seed=1)
    True
    >>> sorted(interleave(0, [Injection("garbage", 2)], seed=1))
    [0, 1]
    """
    kinds = [inj.kind for inj in injections for _ in range(inj.count)]
    rng = random.Random(seed)
    rng.shuffle(kinds)
    positions = sorted(rng.sample(range(n_alerts + len(kinds)), len(kinds)))
    return dict(zip(positions, kinds, strict=True))


def field_value(record: Mapping[str, Any], dotted: str) -> Any:
    """Value at a dotted path of a nested record (``diaSource.diaObjectId``)."""
    value: Any = record
    for part in dotted.split("."):
        value = None if value is None else value.get(part)
    return value


@dataclass
class _File:
    """The messages one alert file gives: ZTF sends the container as it is, Rubin each
    record behind the schema id of the file's version."""

    #: the records, each as the survey published it (kept for repeat copies)
    records: list[dict[str, Any]]
    #: the writer schema the messages are encoded with
    wire: WireSchema
    #: the messages' bytes, when they are the file's own (ZTF, no conversion)
    published: bytes | None


class AlertSource:
    """Encoded alerts of a folder, repeated ``repeat`` times with fresh identifiers.

    A file's alerts go out as published: a ZTF container's bytes unchanged, a Rubin record
    in Confluent wire format behind the schema id of the file's own version. Only repeat
    copies (fresh ids, distinct stamps: built on demand in :meth:`message`) and
    ``schema_version`` (every record re-shaped into that version, ``simulator.versions``) are
    encoded anew, with the file's own writer schema or the requested one. Encoding time is
    accumulated to report the simulator's ceiling.
    """

    def __init__(
        self,
        adapter: SurveyAdapter,
        folder: str | Path,
        *,
        limit: int | None = None,
        keep_records: bool = True,
        same_cutouts: bool = False,
        schema_version: str | None = None,
    ) -> None:
        files = list(iter_alert_files(folder))
        if not files:
            raise ValueError(f"no alert files (*.avro) in {folder}")
        if limit is not None:
            files = files[: max(1, limit)]
        self.adapter = adapter
        self.encoded = 0
        self.encode_seconds = 0.0
        self.filled: set[str] = set()
        target = None if schema_version is None else adapter.schema_version(schema_version)
        self._renamed = _both_ways(adapter.renamed)
        self.keys: list[bytes] = []
        self.values: list[bytes] = []
        #: (file, record index or None for the whole container) of each message
        self._origin: list[tuple[_File, int | None]] = []
        self.stamps = None if same_cutouts else DistinctStamps()
        for path in files:
            source = self._load(path, target)
            whole = adapter.framing == "avro_container"  # a container is one message
            units: list[int | None] = [None] if whole else list(range(len(source.records)))
            for unit in units:
                records = source.records if unit is None else [source.records[unit]]
                self.keys.append(self._key(records[0]))
                if source.published is not None:
                    self.values.append(source.published)
                else:
                    self.values.append(self._encode(records, source.wire))
                self._origin.append((source, unit))
            if not keep_records:
                source.records = []
        log.info(
            "loaded %d alert files (%d messages) from %s", len(files), len(self.values), folder
        )
        if self.filled:
            log.info("fields made up for version %s: %s", schema_version, sorted(self.filled))

    def _load(self, path: Path, target: WireSchema | None) -> _File:
        records, schema = read_alert_records(path)
        if target is not None:
            shaped = []
            for record in records:
                out, filled = convert(record, json.loads(target.json), self._renamed)
                self.filled.update(filled)
                shaped.append(out)
            return _File(shaped, target, None)
        wire = self.adapter.writer_of(schema)
        if self.adapter.framing == "avro_container":
            # a container carries its own schema: any version goes out as it is
            own = wire or WireSchema(schema_fingerprint(schema), "file", json.dumps(schema))
            return _File(records, own, Path(path).read_bytes())
        if wire is None:
            raise ValueError(
                f"{path}: its schema is none of the {self.adapter.name} versions accepted; "
                "replay it with --schema-version"
            )
        return _File(records, wire, None)

    def __len__(self) -> int:
        return len(self.values)

    def _key(self, record: Mapping[str, Any]) -> bytes:
        return str(field_value(record, self.adapter.alert_id)).encode("utf-8")

    def _encode(self, records: list[dict[str, Any]], wire: WireSchema) -> bytes:
        start = time.perf_counter()
        if self.adapter.framing == "avro_container":
            value = container_bytes(records, wire.parsed)
        else:
            (record,) = records
            value = self.adapter.encode(record, wire)
        self.encode_seconds += time.perf_counter() - start
        self.encoded += len(records)
        return value

    def sample(
        self, j: int
    ) -> tuple[bytes, Mapping[str, Any] | None, Callable[[Mapping[str, Any]], bytes]]:
        """Message ``j`` as published, its (first) record (None when the records were not
        kept), and an encoder of a record with the message's own writer schema (for the
        injections of ``simulator.bad_messages``)."""
        source, unit = self._origin[j]
        record = source.records[0 if unit is None else unit] if source.records else None
        return self.values[j], record, lambda r: self._encode([dict(r)], source.wire)

    def message(self, index: int) -> tuple[bytes, bytes]:
        """(key, value) of alert ``index`` of the repeated sequence (copy ``index // n``)."""
        copy, j = divmod(index, len(self.values))
        if copy == 0:
            return self.keys[j], self.values[j]
        source, unit = self._origin[j]
        if not source.records:
            raise RuntimeError("repeat copies need the records: load with keep_records=True")
        records = source.records if unit is None else [source.records[unit]]
        start = time.perf_counter()
        fresh = []
        for record in records:
            copied = self.adapter.with_fresh_ids(record, copy)
            if self.stamps is not None:
                copied = self.stamps.apply(copied, j, copy)
            fresh.append(copied)
        self.encode_seconds += time.perf_counter() - start
        return self._key(fresh[0]), self._encode(fresh, source.wire)


def _both_ways(renamed: tuple[tuple[str, tuple[str, ...]], ...]) -> dict[str, tuple[str, ...]]:
    """Renames as the converter reads them: a field's new name from its old ones, and back."""
    out: dict[str, tuple[str, ...]] = {}
    for new, olds in renamed:
        out[new] = (*out.get(new, ()), *olds)
        prefix = new.rsplit(".", 1)[0] + "." if "." in new else ""
        for old in olds:
            out[f"{prefix}{old}"] = (*out.get(f"{prefix}{old}", ()), new.rsplit(".", 1)[-1])
    return out


def bad_message(kind: InjectionKind, rng: random.Random, source: AlertSource) -> bytes | None:
    """One message of ``kind`` (see ``simulator.bad_messages``) made from ``source``'s alerts."""
    return bad_messages.bad_message(kind, rng, source.adapter, source.sample, len(source))


def iter_messages(
    source: AlertSource,
    n_alerts: int,
    bad_at: Mapping[int, InjectionKind],
    seed: int,
    first: int = 0,
) -> Iterator[tuple[bytes, bytes, InjectionKind | None]]:
    """(key, value, injection kind or None) of the whole sequence, lazily, in send order,
    from alert ``first`` of the repeated sequence.

    Bad messages get keys ``inject-<kind>-<n>`` so that each is unique and recognisable.
    """
    rng = random.Random(seed + 1)
    alert = first
    seen = dict.fromkeys(INJECTION_KINDS, 0)
    for position in range(n_alerts + len(bad_at)):
        kind = bad_at.get(position)
        if kind is None:
            key, value = source.message(alert)
            alert += 1
            yield key, value, None
        else:
            key = f"inject-{kind}-{seen[kind]}".encode()
            seen[kind] += 1
            yield key, bad_message(kind, rng, source), kind


ProgressFn = Callable[[Progress], None]


def replay(
    settings: Settings,
    *,
    survey: str | SurveyAdapter,
    folder: str | Path,
    topic: str | None = None,
    nalerts: int | None = None,
    nbatches: int = 1,
    interval: float = 0.0,
    rate: float | None = None,
    repeat: int = 1,
    partitions: int | None = None,
    inject: Sequence[Injection] | None = None,
    seed: int = 0,
    compression: str = "none",
    same_cutouts: bool = False,
    schema_version: str | None = None,
    progress: ProgressFn | None = None,
    producer: kp.ProducerLike | None = None,
    skip: int = 0,
) -> ReplaySummary:
    """Replay the alert files of ``folder`` into ``topic`` and return what happened.

    ``nalerts`` caps the alerts sent (default: every file times ``repeat``). Either
    ``nbatches``/``interval`` (batch ``i`` starts at ``t0 + i * interval``, each batch
    flushed) or ``rate`` (alerts/s, token bucket) sets the pace. The topic is created with
    ``partitions`` partitions when missing. ``producer`` replaces the Kafka producer (and
    skips topic creation) in unit tests. ``survey`` is the adapter (or its name, built from
    ``settings``); ``schema_version`` re-shapes every alert into that version of the survey's
    schema (``simulator.versions``) instead of sending it as published. ``skip`` leaves out
    the first alerts of the repeated sequence: a replay that goes on from an earlier one of
    ``skip`` alerts sends the alerts that follow, with ids the first did not use.
    """
    if skip < 0:
        raise ValueError(f"skip must be >= 0, got {skip}")
    if repeat < 1:
        raise ValueError(f"repeat must be >= 1, got {repeat}")
    if nalerts is not None and nalerts < 0:
        raise ValueError(f"nalerts must be >= 0, got {nalerts}")
    if interval < 0:
        raise ValueError(f"interval must be >= 0, got {interval}")
    if rate is not None and rate <= 0:
        raise ValueError(f"rate must be > 0 alerts/s, got {rate}")
    if rate is not None and (nbatches != 1 or interval):
        raise ValueError("rate paces the whole replay: do not combine it with nbatches/interval")
    plan_batches(0, nbatches)  # validates nbatches before any I/O
    adapter = build_survey(settings, survey) if isinstance(survey, str) else survey
    inject = [i for i in (inject or []) if i.count]
    if any(i.kind == "unknown_schema" for i in inject) and adapter.framing != "confluent_wire":
        raise ValueError(f"unknown_schema injections apply to Rubin only, not {adapter.name}")
    topic = topic or settings.simulator.topic or default_topic(adapter)
    partitions = partitions or settings.simulator.partitions

    source = AlertSource(
        adapter,
        folder,
        limit=(nalerts + skip) if nalerts else None,
        # repeat copies and NaN-time injections are made from the records
        keep_records=repeat > 1 or any(i.kind == "nan_time" and i.count for i in inject or ()),
        same_cutouts=same_cutouts,
        schema_version=schema_version,
    )
    available = max(len(source) * repeat - skip, 0)
    n_alerts = available if nalerts is None else min(nalerts, available)
    if nalerts is not None and nalerts > available:
        log.warning(
            "only %d alerts available (%d messages x %d), not %d",
            available,
            len(source),
            repeat,
            nalerts,
        )
    bad_at = interleave(n_alerts, inject, seed)

    if producer is None:
        ensure_topics(settings.kafka, [topic], partitions)
        producer = kp.new_producer(kp.producer_config(settings.kafka, compression=compression))
    tracker = kp.DeliveryTracker()
    summary = ReplaySummary(survey=adapter.name, topic=topic, bad={i.kind: 0 for i in inject or ()})
    messages = iter_messages(source, n_alerts, bad_at, seed, first=skip)
    total = n_alerts + len(bad_at)
    log.info(
        "replaying %d alerts + %d bad messages of %s into %s",
        n_alerts,
        len(bad_at),
        adapter.name,
        topic,
    )

    def send(count: int) -> int:
        done = 0
        for key, value, kind in itertools.islice(messages, count):
            kp.produce(producer, topic, key, value, tracker)
            summary.bytes += len(value or b"")
            done += 1
            if kind is None:
                summary.alerts += 1
            else:
                summary.bad[kind] += 1
        return done

    t0 = time.monotonic()

    def report(batch: int, batches: int) -> None:
        state = Progress(summary.messages, total, time.monotonic() - t0, batch, batches)
        if progress is None:
            log.info("%s", state.format())
        else:
            progress(state)

    if rate is None:
        for i, batch in enumerate(plan_batches(total, nbatches)):
            start = batch_start(t0, i, interval)
            if interval and time.monotonic() - start > 0.5:
                log.warning("batch %d starts %.1f s late", i + 1, time.monotonic() - start)
            kp.poll_until(producer, start)
            send(len(batch))
            kp.flush(producer, tracker)
            summary.batches += 1
            report(i + 1, nbatches)
    else:
        _paced(producer, send, total, rate, t0, lambda: report(1, 1))
        kp.flush(producer, tracker)
        summary.batches = 1
        report(1, 1)
    summary.elapsed = time.monotonic() - t0
    summary.delivered, summary.delivery_errors = tracker.delivered, tracker.failed
    summary.errors = list(tracker.samples)
    summary.encoded, summary.encode_seconds = source.encoded, source.encode_seconds
    log.info("replay done: %d alerts, %d bad, %d delivery errors, %.2f s", summary.alerts,
             summary.bad_total, summary.delivery_errors, summary.elapsed)  # fmt: skip
    return summary


def _paced(
    producer: kp.ProducerLike,
    send: Callable[[int], int],
    total: int,
    rate: float,
    t0: float,
    report: Callable[[], None],
) -> None:
    """Send ``total`` messages at ``rate``/s: the token bucket is checked every few
    milliseconds (``poll`` serves delivery reports meanwhile); progress once a second."""
    bucket = TokenBucket(rate, rate * RATE_BURST_SECONDS, now=t0)
    next_report, sent = t0 + 1.0, 0
    while sent < total:
        now = time.monotonic()
        tokens = min(bucket.take(now), total - sent)
        if tokens:
            done = send(tokens)
            if not done:
                break  # the sequence ended early; never spin
            sent += done
            producer.poll(0)
        else:
            producer.poll(RATE_TICK_SECONDS)
        if now >= next_report:
            report()
            next_report += 1.0
