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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

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
    """One alert schema version the broker accepts on the wire."""

    #: routing key on the wire: the Confluent schema id (Rubin) or the CRC-64-AVRO
    #: parsing fingerprint of the embedded writer schema (ZTF), as 16 hex digits
    key: str
    #: human name, e.g. ``ztf 3.3`` or ``lsst.v9_0``
    version: str
    #: the full, self-contained Avro schema as JSON text (used as the Spark from_avro schema)
    json: str

    @property
    def parsed(self) -> dict[str, Any]:
        """The schema parsed by fastavro (for Python-side encoding and reference decoding)."""
        return fastavro.parse_schema(json.loads(self.json))


class SurveyAdapter(Protocol):
    """What a survey declares so that services need no ``if survey == ...``."""

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
    #: dotted path of the observation time, and its kind
    time: str
    time_kind: TimeKind
    #: dotted paths of right ascension and declination (degrees)
    ra: str
    dec: str

    def wire_schemas(self) -> list[WireSchema]:
        """The schema versions accepted on the wire, keyed as :attr:`WireSchema.key`."""
        ...

    def encode(self, record: Mapping[str, Any]) -> bytes:
        """Encode one alert record as this survey publishes it on Kafka."""
        ...

    def with_fresh_ids(self, record: dict[str, Any], copy_index: int) -> dict[str, Any]:
        """Return the record with identifiers made unique for replay copy ``copy_index``."""
        ...


def alert_struct(adapter: SurveyAdapter) -> str:
    """The struct that holds the alert's own measurement (ZTF ``candidate``, Rubin
    ``diaSource``): the one that carries the observation time.

    >>> from fink_broker.surveys import get_adapter
    >>> alert_struct(get_adapter("ztf")), alert_struct(get_adapter("rubin"))
    ('candidate', 'diaSource')
    """
    return adapter.time.split(".")[0]


def survey_fields(adapter: SurveyAdapter) -> frozenset[str]:
    """Top-level field names of every schema version the survey sends."""
    names: set[str] = set()
    for wire in adapter.wire_schemas():
        names.update(f["name"] for f in json.loads(wire.json)["fields"])
    return frozenset(names)


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
    """Read one alert stored as an Avro container file: (record, writer schema)."""
    with open(path, "rb") as handle:
        reader = fastavro.reader(handle)
        record = next(reader)
        return record, reader.writer_schema


def iter_alert_files(folder: str | Path) -> Iterator[Path]:
    """Alert files of a folder in a stable order (``*.avro``, one alert each)."""
    yield from sorted(Path(folder).glob("*.avro"))


def container_bytes(record: Mapping[str, Any], schema: Mapping[str, Any]) -> bytes:
    """One record as a complete Avro object container file (null codec), as ZTF sends it."""
    buf = io.BytesIO()
    fastavro.writer(buf, schema, [record], codec="null")
    return buf.getvalue()
