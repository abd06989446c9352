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
import logging
import random
import struct
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from fink_broker.config import Settings
from fink_broker.kafka_clients import ensure_topics
from fink_broker.simulator import kafka_producer as kp
from fink_broker.simulator.stamps import DistinctStamps
from fink_broker.surveys import SurveyAdapter, get_adapter
from fink_broker.surveys.base import default_topic, iter_alert_files, read_alert_file

log = logging.getLogger(__name__)

InjectionKind = Literal["garbage", "truncated", "unknown_schema"]
INJECTION_KINDS: tuple[InjectionKind, ...] = ("garbage", "truncated", "unknown_schema")

#: schema id of ``unknown_schema`` injections: valid Confluent framing, unregistered id
UNKNOWN_SCHEMA_ID = 9999

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


class AlertSource:
    """Encoded alerts of a folder, repeated ``repeat`` times with fresh identifiers.

    Copy 0 is encoded once at load time and cached; copy ``k`` is built (fresh ids,
    distinct stamps) and encoded on demand in :meth:`message`. The time of both is
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
    ) -> None:
        files = list(iter_alert_files(folder))
        if not files:
            raise ValueError(f"no alert files (*.avro) in {folder}")
        if limit is not None:
            files = files[: max(1, limit)]
        self.adapter = adapter
        self.encoded = 0
        self.encode_seconds = 0.0
        self.keys: list[bytes] = []
        self.values: list[bytes] = []
        self.records: list[dict[str, Any]] = []
        self.stamps = None if same_cutouts else DistinctStamps()
        for i, path in enumerate(files):
            record, _schema = read_alert_file(path)
            if i == 0:  # untimed: the first encode parses the schema, not a steady cost
                adapter.encode(record)
            self.keys.append(self._key(record))
            self.values.append(self._encode(record))
            if keep_records:
                self.records.append(record)
        log.info("loaded %d alert files from %s", len(files), folder)

    def __len__(self) -> int:
        return len(self.values)

    def _key(self, record: Mapping[str, Any]) -> bytes:
        return str(field_value(record, self.adapter.alert_id)).encode("utf-8")

    def _encode(self, record: Mapping[str, Any]) -> bytes:
        start = time.perf_counter()
        value = self.adapter.encode(record)
        self.encode_seconds += time.perf_counter() - start
        self.encoded += 1
        return value

    def message(self, index: int) -> tuple[bytes, bytes]:
        """(key, value) of alert ``index`` of the repeated sequence (copy ``index // n``)."""
        copy, j = divmod(index, len(self.values))
        if copy == 0:
            return self.keys[j], self.values[j]
        if not self.records:
            raise RuntimeError("repeat copies need the records: load with keep_records=True")
        start = time.perf_counter()
        fresh = self.adapter.with_fresh_ids(self.records[j], copy)
        if self.stamps is not None:
            fresh = self.stamps.apply(fresh, j, copy)
        self.encode_seconds += time.perf_counter() - start
        return self._key(fresh), self._encode(fresh)


def bad_message(kind: InjectionKind, rng: random.Random, source: AlertSource) -> bytes:
    """One undecodable message of ``kind`` (see :class:`Injection`).

    - ``garbage``: random bytes whose first byte is neither the Confluent magic (0) nor the
      ``O`` of the Avro container magic, so it fails at the framing stage in every survey;
    - ``truncated``: a real encoded alert cut at a random length; for containers the cut
      right after the header is skipped, as it leaves a valid (empty) container file;
    - ``unknown_schema``: a valid Rubin body behind an unregistered schema id.
    """
    if kind == "garbage":
        body = bytearray(rng.randbytes(rng.randint(16, 4096)))
        body[0] = rng.choice([b for b in range(1, 256) if b != ord("O")])
        return bytes(body)
    value = source.values[rng.randrange(len(source))]
    if kind == "truncated":
        header_end = -1
        if value.startswith(b"Obj\x01"):
            header_end = value.find(value[-16:]) + 16  # null codec: the sync marker ends it
        while True:
            cut = rng.randint(1, len(value) - 1)
            if cut != header_end:
                return value[:cut]
    if kind == "unknown_schema":
        if source.adapter.framing != "confluent_wire":
            raise ValueError(
                f"unknown_schema injections need Confluent framing, not {source.adapter.name}"
            )
        ids = getattr(source.adapter, "schema_ids", ())
        bad_id = UNKNOWN_SCHEMA_ID if UNKNOWN_SCHEMA_ID not in ids else max(ids) + 1
        return struct.pack(">bI", 0, bad_id) + value[5:]
    raise ValueError(f"unknown injection kind {kind!r}")


def iter_messages(
    source: AlertSource, n_alerts: int, bad_at: Mapping[int, InjectionKind], seed: int
) -> Iterator[tuple[bytes, bytes, InjectionKind | None]]:
    """(key, value, injection kind or None) of the whole sequence, lazily, in send order.

    Bad messages get keys ``inject-<kind>-<n>`` so that each is unique and recognisable.
    """
    rng = random.Random(seed + 1)
    alert = 0
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
    survey: str,
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
    progress: ProgressFn | None = None,
    producer: kp.ProducerLike | None = None,
) -> ReplaySummary:
    """Replay the alert files of ``folder`` into ``topic`` and return what happened.

    ``nalerts`` caps the alerts sent (default: every file times ``repeat``). Either
    ``nbatches``/``interval`` (batch ``i`` starts at ``t0 + i * interval``, each batch
    flushed) or ``rate`` (alerts/s, token bucket) sets the pace. The topic is created with
    ``partitions`` partitions when missing. ``producer`` replaces the Kafka producer (and
    skips topic creation) in unit tests.
    """
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
    adapter = get_adapter(survey, rubin_schema_ids=settings.stream2raw.rubin_schema_ids)
    inject = [i for i in (inject or []) if i.count]
    if any(i.kind == "unknown_schema" for i in inject) and adapter.framing != "confluent_wire":
        raise ValueError(f"unknown_schema injections apply to Rubin only, not {survey}")
    topic = topic or settings.simulator.topic or default_topic(adapter)
    partitions = partitions or settings.simulator.partitions

    n_files = sum(1 for _ in iter_alert_files(folder))
    available = n_files * repeat
    n_alerts = available if nalerts is None else min(nalerts, available)
    if nalerts is not None and nalerts > available:
        log.warning(
            "only %d alerts available (%d files x %d), not %d", available, n_files, repeat, nalerts
        )
    source = AlertSource(
        adapter,
        folder,
        limit=n_alerts or 1,
        keep_records=n_alerts > n_files,
        same_cutouts=same_cutouts,
    )
    bad_at = interleave(n_alerts, inject, seed)

    if producer is None:
        ensure_topics(settings.kafka, [topic], partitions)
        producer = kp.new_producer(kp.producer_config(settings.kafka, compression=compression))
    tracker = kp.DeliveryTracker()
    summary = ReplaySummary(survey=survey, topic=topic, bad=dict.fromkeys(INJECTION_KINDS, 0))
    messages = iter_messages(source, n_alerts, bad_at, seed)
    total = n_alerts + len(bad_at)
    log.info(
        "replaying %d alerts + %d bad messages of %s into %s", n_alerts, len(bad_at), survey, topic
    )

    def send(count: int) -> int:
        done = 0
        for key, value, kind in itertools.islice(messages, count):
            kp.produce(producer, topic, key, value, tracker)
            summary.bytes += len(value)
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
