"""The survey adapter protocol: everything that differs between ZTF and Rubin.

Services are written once and take an adapter. An adapter is declarative data (field paths,
wire framing, schemas) plus a few pure-Python functions; it never imports pyspark, so the
engine turns the declarations into Spark expressions and the simulator and tests use the
same adapter without a JVM.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal, Protocol

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

from fink_broker.surveys.fields import Cut, Transform
from fink_broker.surveys.resolution import field_tree, optional_reader

#: How alerts travel on Kafka.
#: ``avro_container``: each message is a whole Avro object container file (schema embedded).
#: ``confluent_wire``: magic byte 0, 4-byte big-endian schema id, schemaless Avro body.
Framing = Literal["avro_container", "confluent_wire"]

#: Time column kinds: Julian Date (UTC based, ZTF) or MJD in the TAI scale (Rubin).
TimeKind = Literal["jd", "mjd_tai"]

#: TAI - UTC since 2017-01-01; needed to put Rubin MJD TAI on the UTC night grid.
TAI_MINUS_UTC_SECONDS = 37.0


@dataclass(frozen=True)
class WireSchema:
    """One alert schema version: a writer schema on the wire, or the archive's reader."""

    #: routing key on the wire: the Confluent schema id (Rubin) or the CRC-64-AVRO
    #: parsing fingerprint of the embedded writer schema (ZTF), as 16 hex digits
    key: str
    #: human name, e.g. ``4.02`` or ``lsst.v9_0``
    version: str
    #: the full, self-contained Avro schema as JSON text (used as the Spark from_avro schema)
    json: str

    @property
    def parsed(self) -> dict[str, Any]:
        """The schema parsed by fastavro (for Python-side encoding and reference decoding)."""
        return _parsed(self.json)


@cache
def _parsed(text: str) -> dict[str, Any]:
    """Parsing a 20-100 kB schema costs ~1 ms: once per process and schema."""
    return fastavro.parse_schema(json.loads(text))


@cache
def reader_schema(
    wire: WireSchema,
    aliases: tuple[tuple[str, tuple[str, ...]], ...] = (),
    type_aliases: tuple[tuple[str, tuple[str, ...]], ...] = (),
    namespaces: tuple[str, ...] = (),
) -> WireSchema:
    """The archive's reader schema made from ``wire``: every field optional, renamed fields
    and record types aliased (:func:`~fink_broker.surveys.resolution.optional_reader`)."""
    schema = optional_reader(json.loads(wire.json), dict(aliases), dict(type_aliases), namespaces)
    return WireSchema(key=f"reader:{wire.key}", version=wire.version, json=json.dumps(schema))


@dataclass(frozen=True)
class DisplayFields:
    """What a live view shows of an alert besides its id, time and position."""

    #: dotted paths of the detection's brightness and its error
    value: str
    error: str
    #: dotted path of the band, and numeric band codes -> names (empty: already a name)
    band: str
    unit: str
    band_names: Mapping[int, str] = field(default_factory=dict)
    #: shown as the object when the object id is empty (Rubin Solar System sources)
    object_fallback: str | None = None
    #: sets of top-level fields whose presence identifies a record of the survey: nested
    #: alerts first, then the flat records an outgoing topic may publish
    markers: tuple[frozenset[str], ...] = ()


class SurveyAdapter(Protocol):
    """What a survey declares so that services need no ``if survey == ...``.

    An adapter is built once from the settings (``fink_broker.surveys.build_survey``) and
    handed to every service, the API, the simulator and the CLI.
    """

    #: short name used in topics, tables and config: ``ztf``, ``rubin``
    name: str
    #: suffix of outgoing topic names (``fink_<filter>_<suffix>``)
    topic_suffix: str
    #: default input topic for a night (``{night}`` is replaced)
    default_topic: str
    framing: Framing
    #: dotted path of the object identifier (string for ZTF, 64-bit integer for Rubin)
    object_id: str
    #: dotted path of the unique alert identifier
    alert_id: str
    #: dotted path of the observation time, its kind, and the plausible range of its values:
    #: an alert whose time is not finite or outside it goes to quarantine
    time: str
    time_kind: TimeKind
    era: tuple[float, float]
    #: dotted paths of right ascension and declination (degrees)
    ra: str
    dec: str
    #: canonical column -> transform (``surveys/*_fields.py``), and raw2science's cuts
    canonical: Mapping[str, Transform]
    cuts: tuple[Cut, ...]
    display: DisplayFields
    #: JSON configuration of the schema registry asked for unknown schema ids ('' = none)
    registry: str
    #: fields renamed between versions: (dotted path in the reader, its older names)
    renamed: tuple[tuple[str, tuple[str, ...]], ...]

    @property
    def accepted(self) -> tuple[WireSchema, ...]:
        """The writer schemas the decoding plan knows, keyed as :attr:`WireSchema.key`."""
        ...

    @property
    def reader(self) -> WireSchema:
        """The archive's reader schema: every accepted version resolves into it."""
        ...

    def wire_schemas(self) -> list[WireSchema]:
        """The accepted writer schemas, as a list."""
        ...

    def writer_of(self, schema: Mapping[str, Any]) -> WireSchema | None:
        """The accepted version a writer schema is, if any."""
        ...

    def schema_version(self, version: str) -> WireSchema:
        """The writer schema of a version, by the name operators write (``4.02``, ``11.1``)."""
        ...

    def encode(self, record: Mapping[str, Any], schema: WireSchema | None = None) -> bytes:
        """Encode one alert record as this survey publishes it on Kafka, with ``schema``
        (an accepted writer schema; default: the reader's version)."""
        ...

    def with_fresh_ids(self, record: dict[str, Any], copy_index: int) -> dict[str, Any]:
        """Return the record with identifiers made unique for replay copy ``copy_index``."""
        ...


def match_writer(accepted: tuple[WireSchema, ...], schema: Mapping[str, Any]) -> WireSchema | None:
    """The accepted version ``schema`` is: the one with its fingerprint, else the largest one
    whose every field ``schema`` has (a file rewritten by another tool keeps the fields of its
    version, perhaps with a few of its own, but not its schema's exact text).
    """
    key = schema_fingerprint(schema)
    for wire in accepted:
        if wire.key == key:
            return wire
    tree = field_tree(dict(schema))
    within = [w for w in accepted if _within(_tree(w), tree)]
    return max(within, key=lambda w: _size(_tree(w)), default=None)


def record_writer(accepted: tuple[WireSchema, ...], record: Mapping[str, Any]) -> WireSchema:
    """The largest accepted version whose every field ``record`` has: the version a decoded
    record was written in, for re-encoding it as it was published.

    >>> def wire(version, fields):
    ...     schema = {"type": "record", "name": "a", "fields": [
    ...         {"name": f, "type": "long"} for f in fields]}
    ...     return WireSchema(version, version, json.dumps(schema))
    >>> versions = (wire("1", ["id"]), wire("2", ["id", "flux"]))
    >>> record_writer(versions, {"id": 1, "flux": None}).version
    '2'
    >>> record_writer(versions, {"id": 1}).version
    '1'
    """
    tree = _record_tree(record)
    within = [w for w in accepted if _within(_tree(w), tree)]
    if not within:
        raise ValueError(
            f"no accepted schema version has only fields of the record {sorted(record)}"
        )
    return max(within, key=lambda w: _size(_tree(w)))


def _record_tree(value: Any) -> tuple[Any, ...]:
    """:func:`field_tree` of a decoded record (lists: their first element)."""
    if isinstance(value, list):
        return _record_tree(value[0]) if value else ()
    if isinstance(value, Mapping):
        return tuple(sorted((k, _record_tree(v)) for k, v in value.items()))
    return ()


def _within(small: tuple[Any, ...], large: tuple[Any, ...]) -> bool:
    """Whether every field of ``small`` is in ``large``, at every depth (a field without
    sub-fields in ``large``, such as a null record, holds any)."""
    have = dict(large)
    return all(name in have and (not have[name] or _within(sub, have[name])) for name, sub in small)


def _size(tree: tuple[Any, ...]) -> int:
    return sum(1 + _size(sub) for _, sub in tree)


@cache
def _tree(wire: WireSchema) -> tuple[Any, ...]:
    return field_tree(json.loads(wire.json))


def alert_struct(adapter: SurveyAdapter) -> str:
    """The struct that holds the alert's own measurement (ZTF ``candidate``, Rubin
    ``diaSource``): the one that carries the observation time.

    >>> from fink_broker.surveys import get_adapter
    >>> alert_struct(get_adapter("ztf")), alert_struct(get_adapter("rubin"))
    ('candidate', 'diaSource')
    """
    return adapter.time.split(".")[0]


def survey_fields(adapter: SurveyAdapter) -> frozenset[str]:
    """Top-level field names of the survey's alerts as archived (its reader schema)."""
    return frozenset(f["name"] for f in json.loads(adapter.reader.json)["fields"])


def default_topic(adapter: SurveyAdapter, night: str | None = None) -> str:
    """The survey's default input topic, filled in (``{night}``: UTC today by default).

    The simulator writes to it and stream2raw reads from it unless a topic is configured.
    """
    import datetime as dt

    night = night or dt.datetime.now(dt.UTC).strftime("%Y%m%d")
    return adapter.default_topic.format(night=night)


def schema_fingerprint(schema: Mapping[str, Any]) -> str:
    """CRC-64-AVRO fingerprint of the parsing canonical form, as fastavro writes it.

    The JVM framing function (``AvroContainerFrame``) returns the same 16 hex digits, so
    the two sides agree on which schema version a message carries.

    >>> schema_fingerprint({"type": "record", "name": "a", "fields": []})
    'b1de689cb0797aa3'
    """
    return fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO")


def read_alert_file(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read the first alert of an Avro container file: (record, writer schema)."""
    records, schema = read_alert_records(path)
    return records[0], schema


def read_alert_records(path: str | Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Read every alert of an Avro container file: (records, writer schema)."""
    with open(path, "rb") as handle:
        reader = fastavro.reader(handle)
        records = list(reader)
        if not records:
            raise ValueError(f"{path} holds no record")
        return records, reader.writer_schema


def iter_alert_files(folder: str | Path) -> Iterator[Path]:
    """Alert files of a folder in a stable order (``*.avro``, one alert each)."""
    yield from sorted(Path(folder).glob("*.avro"))


def container_bytes(
    record: Mapping[str, Any] | list[Mapping[str, Any]], schema: Mapping[str, Any]
) -> bytes:
    """One record (or several) as a complete Avro object container file (null codec), as ZTF
    sends it."""
    buf = io.BytesIO()
    records = record if isinstance(record, list) else [record]
    fastavro.writer(buf, schema, records, codec="null")
    return buf.getvalue()
