"""Decode any Fink-related Kafka message for display: survey input or Fink output.

``checkstream`` looks at input topics (ZTF, Rubin) and at Fink's outgoing topics alike, so
the framing is recognised per message rather than configured:

1. **Fink outgoing**: schemaless Avro value, writer schema as JSON text in the message key;
2. **Avro container file**: the value starts with ``Obj\\x01`` (ZTF's framing);
3. **Confluent wire format**: magic byte 0, 4-byte big-endian schema id, schemaless Avro
   (Rubin's framing; schemas from ``lsst-alert-packet``).

The key is checked first because a schemaless Avro body may itself start with a zero byte.
Which survey a decoded record belongs to is read from its fields (``candidate`` -> ZTF,
``diaSource`` -> Rubin), so an outgoing topic needs no configuration either; identifiers,
time and position then come from the survey adapter's declared paths.

A message that cannot be decoded never raises: it becomes an :class:`AlertSummary` with an
``error`` so that the live view shows and counts it. The report model of the live view and
its text live here too: everything here is pure, the Kafka side is in ``checkstream``.
"""

from __future__ import annotations

import io
import json
import logging
import re
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any, Literal

import fastavro

from fink_broker.surveys import default_adapters
from fink_broker.surveys.base import SurveyAdapter

log = logging.getLogger(__name__)

#: the framing a message was recognised as
MessageFormat = Literal["fink_outgoing", "avro_container", "confluent_wire", "unknown"]

AVRO_CONTAINER_MAGIC = b"Obj\x01"
CONFLUENT_MAGIC = 0

#: outgoing schemas kept parsed: few in practice (one per filter topic and schema version)
MAX_KEYED_SCHEMAS = 64

#: longest error text kept per message: enough for the reason, short enough for a table row
MAX_ERROR_CHARS = 160

#: JD -> MJD
MJD_OFFSET = 2400000.5


#: every survey's adapter with its defaults: the live view reads any survey's topic
_ADAPTERS: tuple[SurveyAdapter, ...] = default_adapters()


@dataclass(frozen=True)
class AlertSummary:
    """What the live view shows of one message; ``error`` is set when it is undecodable."""

    framing: MessageFormat
    survey: str | None = None
    alert_id: int | str | None = None
    object_id: int | str | None = None
    #: MJD of the observation (UTC-based for ZTF, TAI for Rubin: 37 s apart, fine for display)
    mjd: float | None = None
    ra: float | None = None
    dec: float | None = None
    band: str | None = None
    #: magnitude (ZTF) or flux (Rubin) of the detection, its error and unit
    brightness: float | None = None
    brightness_err: float | None = None
    unit: str | None = None
    #: schema version or key the message was decoded with
    schema: str | None = None
    error: str | None = None
    partition: int | None = None
    offset: int | None = None

    @property
    def ok(self) -> bool:
        """True when the message decoded into a recognised alert."""
        return self.error is None


class UndecodableError(ValueError):
    """A message that is not a decodable Fink-related alert; the text says why."""


def describe(err: BaseException) -> str:
    """Short, stable text of a decoding exception (object addresses removed, length capped).

    >>> import io
    >>> describe(EOFError(f"cannot read float from {io.BytesIO()!r}"))
    'EOFError: cannot read float'
    """
    text = re.sub(r" (from|at) <[^>]*>", "", str(err))
    return f"{type(err).__name__}: {text}"[:MAX_ERROR_CHARS]


def field_at(record: Mapping[str, Any], path: str) -> Any:
    """Value at a dotted ``path``; a flat record may carry the leaf at top level.

    >>> field_at({"candidate": {"jd": 1.5}}, "candidate.jd"), field_at({"jd": 2.0}, "candidate.jd")
    (1.5, 2.0)
    >>> field_at({"candidate": None}, "candidate.jd") is None
    True
    """
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            value = None
            break
        value = value[part]
    if value is None and "." in path:
        leaf = path.rsplit(".", 1)[1]
        head = path.split(".", 1)[0]
        if head not in record:  # only flat records: a null sub-record stays null
            return record.get(leaf)
    return value


def detect_survey(record: Mapping[str, Any]) -> SurveyAdapter | None:
    """The adapter of the survey whose alert ``record`` is, from its fields (None if neither).

    Nested alerts are recognised first, then the flat records an outgoing topic may publish
    (each adapter's ``display.markers``).

    >>> detect_survey({"objectId": "ZTF1", "candidate": {}}).name
    'ztf'
    >>> detect_survey({"diaSource": {}}).name, detect_survey({"foo": 1}) is None
    ('rubin', True)
    """
    keys = set(record)
    depth = max(len(a.display.markers) for a in _ADAPTERS)
    for level in range(depth):
        for adapter in _ADAPTERS:
            markers = adapter.display.markers
            if level < len(markers) and markers[level] <= keys:
                return adapter
    return None


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def summarize_record(
    record: Mapping[str, Any], *, framing: MessageFormat, schema: str | None = None
) -> AlertSummary:
    """The summary of a decoded record, with the survey adapter's paths."""
    adapter = detect_survey(record)
    if adapter is None:
        fields = ", ".join(sorted(record)[:6])
        raise UndecodableError(f"not a ZTF or Rubin alert (fields: {fields})")
    time = _float(field_at(record, adapter.time))
    if time is not None and adapter.time_kind == "jd":
        time -= MJD_OFFSET
    phot = adapter.display
    object_id = field_at(record, adapter.object_id)
    fallback = field_at(record, phot.object_fallback) if phot.object_fallback else None
    if not object_id and fallback:
        object_id = f"ss:{fallback}"
    band = field_at(record, phot.band)
    if isinstance(band, int) and not isinstance(band, bool):
        band = phot.band_names.get(band, str(band))
    return AlertSummary(
        framing=framing,
        survey=adapter.name,
        alert_id=field_at(record, adapter.alert_id),
        object_id=object_id,
        mjd=time,
        ra=_float(field_at(record, adapter.ra)),
        dec=_float(field_at(record, adapter.dec)),
        band=None if band is None else str(band),
        brightness=_float(field_at(record, phot.value)),
        brightness_err=_float(field_at(record, phot.error)),
        unit=phot.unit,
        schema=schema,
    )


def _default_rubin_schema(schema_id: int) -> tuple[str, Any]:
    from fink_broker.surveys.rubin import lsst_schema  # lsst-alert-packet: only when needed

    wire = lsst_schema(schema_id)
    return wire.version, wire.parsed


class AlertDecoder:
    """Recognises the framing of each message and decodes it, caching parsed schemas.

    ``rubin_schema`` maps a Confluent schema id to ``(version, parsed schema)`` and raises
    ``KeyError`` for an unknown id; the default reads ``lsst-alert-packet``. Failures are
    cached too, so a stream of bad ids does not hit the package files for each message.
    """

    def __init__(self, rubin_schema: Callable[[int], tuple[str, Any]] | None = None) -> None:
        self._rubin_schema = rubin_schema or _default_rubin_schema
        self._wire: dict[int, tuple[str, Any] | None] = {}

    def summarize(
        self,
        value: bytes | None,
        key: bytes | None = None,
        *,
        partition: int | None = None,
        offset: int | None = None,
    ) -> AlertSummary:
        """The summary of one message; never raises (an undecodable one carries ``error``)."""
        framing = framing_of(value, key)
        try:
            record, schema = self.decode(framing, value, key)
            summary = summarize_record(record, framing=framing, schema=schema)
        except UndecodableError as err:
            summary = AlertSummary(framing, error=str(err)[:MAX_ERROR_CHARS])
        except Exception as err:  # a live view must survive any message, so no narrower type
            log.debug("unexpected failure on a message", exc_info=True)
            summary = AlertSummary(framing, error=describe(err))
        return replace(summary, partition=partition, offset=offset)

    def decode(
        self, framing: MessageFormat, value: bytes | None, key: bytes | None = None
    ) -> tuple[dict[str, Any], str | None]:
        """``(record, schema name)`` of a message of ``framing``, or :class:`UndecodableError`."""
        if not value:
            raise UndecodableError("empty message")
        if framing == "fink_outgoing":
            name, parsed = _keyed_schema(key or b"")
            return _schemaless(value, parsed, name), name
        if framing == "avro_container":
            return _container(value)
        if framing == "confluent_wire":
            if len(value) < 5:
                raise UndecodableError(f"Confluent header cut short ({len(value)} bytes)")
            (schema_id,) = struct.unpack(">I", value[1:5])
            name, parsed = self._wire_schema(schema_id)
            return _schemaless(value[5:], parsed, name), name
        raise UndecodableError(f"unknown framing (first bytes {value[:4].hex()})")

    def _wire_schema(self, schema_id: int) -> tuple[str, Any]:
        if schema_id not in self._wire:
            try:
                self._wire[schema_id] = self._rubin_schema(schema_id)
            except KeyError:
                self._wire[schema_id] = None
                log.warning("no schema for Confluent schema id %d", schema_id)
        found = self._wire[schema_id]
        if found is None:
            raise UndecodableError(f"unknown schema id {schema_id}")
        return found


@lru_cache(maxsize=MAX_KEYED_SCHEMAS)
def _keyed_schema(key: bytes) -> tuple[str, Any]:
    """The parsed writer schema carried by an outgoing message's key.

    Bad keys are not cached (lru_cache keeps results only), which is fine: they are rare
    and cheap to reject again.
    """
    try:
        definition = json.loads(key)
        return str(definition.get("name", "keyed schema")), fastavro.parse_schema(definition)
    except Exception as err:  # json, fastavro and type errors alike: a bad key
        raise UndecodableError(f"key is not an Avro schema ({describe(err)})") from err


def framing_of(value: bytes | None, key: bytes | None) -> MessageFormat:
    """How a message is framed, from its first bytes and its key, without decoding it.

    The key goes first: Fink's outgoing value is schemaless Avro and may start with a zero
    byte like the Confluent magic. Survey keys are alert ids or null, never a JSON object.

    >>> framing_of(b"Obj\\x01...", b"123"), framing_of(b"\\x00\\x00\\x00\\x03\\x84", None)
    ('avro_container', 'confluent_wire')
    >>> framing_of(b"\\x00\\x02", b'{"type": "record"}'), framing_of(b"junk", None)
    ('fink_outgoing', 'unknown')
    """
    if key and key.lstrip()[:1] == b"{":
        return "fink_outgoing"
    if value and value.startswith(AVRO_CONTAINER_MAGIC):
        return "avro_container"
    if value and value[0] == CONFLUENT_MAGIC:
        return "confluent_wire"
    return "unknown"


def _schemaless(body: bytes, parsed: Any, name: str) -> dict[str, Any]:
    """Decode a schemaless body; leftover bytes mean the schema is not the writer's."""
    buf = io.BytesIO(body)
    try:
        record = fastavro.schemaless_reader(buf, parsed, None)
    except Exception as err:  # garbage fails in many ways inside fastavro
        raise UndecodableError(f"bad Avro body for {name} ({describe(err)})") from err
    left = len(body) - buf.tell()
    if left:
        raise UndecodableError(f"{left} trailing bytes after the {name} record")
    if not isinstance(record, dict):
        raise UndecodableError(f"{name} is not a record schema")
    return record


def _container(value: bytes) -> tuple[dict[str, Any], str | None]:
    """The first record of an Avro container file (ZTF sends one per message)."""
    try:
        reader = fastavro.reader(io.BytesIO(value))
        record = next(reader, None)
    except Exception as err:  # truncated files fail in many ways
        raise UndecodableError(f"bad Avro container ({describe(err)})") from err
    if record is None:
        raise UndecodableError("Avro container without records")
    if not isinstance(record, dict):
        raise UndecodableError("Avro container of non-record values")
    schema = reader.writer_schema
    name = schema.get("name") if isinstance(schema, dict) else None
    return record, name


def format_brightness(summary: AlertSummary) -> str:
    """``r 18.21 ± 0.05 mag`` or ``i 3028.2 ± 572.8 nJy`` (blank parts when missing).

    >>> format_brightness(AlertSummary("confluent_wire", band="i", brightness=3028.19,
    ...                                brightness_err=572.79, unit="nJy"))
    'i 3028.2 ± 572.8 nJy'
    """
    if summary.brightness is None:
        return summary.band or ""
    digits = 2 if summary.unit == "mag" else 1
    text = f"{summary.brightness:.{digits}f}"
    if summary.brightness_err is not None:
        text += f" ± {summary.brightness_err:.{digits}f}"
    return " ".join(p for p in (summary.band, text, summary.unit) if p)


#: the columns of :func:`format_table`: header, getter
_COLUMNS: tuple[tuple[str, Callable[[AlertSummary], str]], ...] = (
    ("partition:offset", lambda s: f"{s.partition}:{s.offset}" if s.partition is not None else ""),
    ("survey", lambda s: s.survey or ""),
    ("alert id", lambda s: "" if s.alert_id is None else str(s.alert_id)),
    ("object id", lambda s: "" if s.object_id is None else str(s.object_id)),
    ("MJD", lambda s: "" if s.mjd is None else f"{s.mjd:.5f}"),
    ("ra", lambda s: "" if s.ra is None else f"{s.ra:.6f}"),
    ("dec", lambda s: "" if s.dec is None else f"{s.dec:+.6f}"),
    ("mag / flux", format_brightness),
)


#: indices of the columns aligned to the right
_RIGHT = frozenset(i for i, (name, _) in enumerate(_COLUMNS) if name in {"MJD", "ra", "dec"})


def format_table(summaries: list[AlertSummary], indent: str = "  ") -> list[str]:
    """Aligned text rows, header first; an undecodable message spans the alert columns."""
    n = len(_COLUMNS)
    rows = [[name for name, _ in _COLUMNS]] + [
        [get(s) for _, get in _COLUMNS] if s.ok else [_COLUMNS[0][1](s), f"undecodable ({s.error})"]
        for s in summaries
    ]
    widths = [max(len(r[i]) for r in rows if len(r) == n or i == 0) for i in range(n)]
    return [
        indent
        + "  ".join(
            c.rjust(widths[i]) if i in _RIGHT and len(r) == n else c.ljust(widths[i])
            for i, c in enumerate(r)
        ).rstrip()
        for r in rows
    ]


# --------------------------------------------------------------------------- live-view reports


@dataclass(frozen=True)
class PartitionOffsets:
    """Watermarks of one partition at report time."""

    partition: int
    low: int
    high: int


@dataclass(frozen=True)
class Lag:
    """How far one consumer is behind the high watermarks, per partition.

    ``next_offsets[p]`` is the next offset the consumer will read; None when it has none
    for ``p`` (nothing committed, or a partition its checkpoint does not know).
    """

    consumer: str
    next_offsets: dict[int, int | None] = field(default_factory=dict)
    lag: dict[int, int | None] = field(default_factory=dict)
    #: why there are no numbers, or where they come from (e.g. the checkpoint batch)
    note: str = ""

    @property
    def total(self) -> int | None:
        """Sum of the known per-partition lags (None when none is known)."""
        known = [v for v in self.lag.values() if v is not None]
        return sum(known) if known else None

    def render(self) -> str:
        """``<consumer>: <total> (<partition>: <lag>, ...) [note]``; ``-`` when unknown."""
        if not self.lag:
            return f"{self.consumer}: {self.note or 'no offsets'}"
        per = ", ".join(f"{p}: {'-' if v is None else v}" for p, v in sorted(self.lag.items()))
        note = f" [{self.note}]" if self.note else ""
        return f"{self.consumer}: {'-' if self.total is None else self.total} ({per}){note}"


@dataclass
class Counts:
    """Messages consumed, split into decoded alerts and undecodable messages."""

    messages: int = 0
    alerts: int = 0
    undecodable: int = 0

    def add(self, ok: bool) -> None:
        """Count one message."""
        self.messages += 1
        self.alerts += ok
        self.undecodable += not ok


@dataclass(frozen=True)
class Report:
    """One interval of the live view; tests read these numbers, the CLI prints them."""

    topic: str
    number: int
    time: str
    elapsed_s: float
    #: this interval, and everything since the viewer started
    interval: Counts
    total: Counts
    #: messages per second over the interval
    rate: float
    partitions: tuple[PartitionOffsets, ...]
    lags: tuple[Lag, ...]
    last: tuple[AlertSummary, ...]
    #: a problem with the topic itself (missing, metadata timeout), else empty
    note: str = ""

    @property
    def high_watermarks(self) -> dict[int, int]:
        """Partition -> high watermark."""
        return {p.partition: p.high for p in self.partitions}

    def lag_of(self, consumer: str) -> Lag | None:
        """The lag entry whose consumer name starts with ``consumer`` (e.g. ``stream2raw``)."""
        return next((lag for lag in self.lags if lag.consumer.startswith(consumer)), None)

    def render(self) -> str:
        """The report as aligned text lines."""
        head = (
            f"[{self.time}] {self.topic}: {self.interval.messages} messages in "
            f"{self.elapsed_s:.1f} s ({self.rate:.1f}/s): {self.interval.alerts} alerts, "
            f"{self.interval.undecodable} undecodable | total {self.total.messages} "
            f"({self.total.undecodable} undecodable)"
        )
        lines = [head, *([f"  {self.note}"] if self.note else [])]
        if self.partitions:
            highs = ", ".join(f"{p.partition}: {p.high}" for p in self.partitions)
            lines.append(f"  high watermarks: {highs} (sum {sum(self.high_watermarks.values())})")
        lines += [f"  lag {lag.render()}" for lag in self.lags]
        if self.last:
            lines.append(f"  last {len(self.last)}:")
            lines += format_table(list(self.last), indent="    ")
        return "\n".join(lines)
