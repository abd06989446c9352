"""Rubin/LSST: Confluent wire format, MJD TAI times, nJy fluxes, 64-bit integer ids.

The schema id behind the magic byte follows lsst-alert-packet's registry convention
(major * 100 + minor, ``900`` = ``lsst.v9_0``). Every id the installed package ships is
accepted and resolved into the archive's reader schema (default: the newest version); an id
it does not know is asked of the configured schema registry, on the executors
(``infra/java/.../SchemaRegistry.java``).
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import fastavro

from fink_broker.surveys import rubin_fields
from fink_broker.surveys.base import (
    DisplayFields,
    Framing,
    TimeKind,
    WireSchema,
    match_writer,
    reader_schema,
    record_writer,
)
from fink_broker.surveys.fields import Cut, Transform
from fink_broker.surveys.names import RUBIN_NAME

#: replay copy k shifts every diaSource/diaObject id by k * this: the ids of one visit span
#: ~1e9, and 9e8 copies still fit in a signed 64-bit integer
ID_STRIDE = 10**10

#: (path to a record holding ids, the id fields shifted in it)
_ID_FIELDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("", ("diaSourceId", "alertId")),
    ("diaSource", ("diaSourceId", "diaObjectId", "ssObjectId")),
    ("diaObject", ("diaObjectId",)),
    ("ssSource", ("diaSourceId", "ssObjectId")),
)
_ID_LISTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("prvDiaSources", ("diaSourceId", "diaObjectId")),
    ("prvDiaForcedSources", ("diaForcedSourceId", "diaObjectId")),
)

#: fields renamed between versions, declared as Avro aliases on the reader, so an older
#: alert's value lands in the newer name:
#: - v7 named the triggering diaSource's id ``alertId`` (Rubin's alert packaging set it to
#:   that ``diaSourceId``); v8 renamed it;
#: - v10 renamed the MPC orbit record ``MPCORB`` to ``mpc_orbits``, its packed designation
#:   ``mpcDesignation`` to ``packed_primary_provisional_designation``, and ssSource's
#:   ``predictedVMagnitude`` to ``ephVmag`` (both the predicted V magnitude).
#: v9's ``ssSource.residualRa/Dec`` (degrees, no cos(dec)) are not v10's ``ephOffsetRa/Dec``
#: (cos(dec) included): a v9 alert in a v10+ archive has no residual.
RENAMED: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("diaSourceId", ("alertId",)),
    ("mpc_orbits", ("MPCORB",)),
    ("mpc_orbits.packed_primary_provisional_designation", ("mpcDesignation",)),
    ("ssSource.ephVmag", ("predictedVMagnitude",)),
)
#: record types renamed between versions (short name -> its older short names)
RENAMED_TYPES: tuple[tuple[str, tuple[str, ...]], ...] = (("mpc_orbits", ("MPCORB",)),)


def schema_id_to_version(schema_id: int) -> tuple[int, int]:
    """The lsst-alert-packet registry convention: id = major * 100 + minor.

    >>> schema_id_to_version(900), schema_id_to_version(1001)
    ((9, 0), (10, 1))
    """
    return schema_id // 100, schema_id % 100


def version_to_schema_id(version: str) -> int:
    """A version as written by operators (``11.1``, ``v11_1``, ``lsst.v11_1``, ``1101``).

    >>> [version_to_schema_id(v) for v in ("11.1", "lsst.v7_4", "v10_0", "900")]
    [1101, 704, 1000, 900]
    """
    text = version.strip().removeprefix("lsst.").removeprefix("v").replace("_", ".")
    if "." in text:
        major, minor = text.split(".", 1)
        return int(major) * 100 + int(minor)
    return int(text)


@cache
def shipped_schema_ids() -> tuple[int, ...]:
    """Every schema id whose schema the installed lsst-alert-packet ships, ascending."""
    import lsst.alert.packet as packet  # heavy import, only when a Rubin schema is needed

    root = Path(packet.get_schema_root())
    ids = []
    for path in root.glob("*/*/lsst.v*_*.alert.avsc"):
        major, minor = path.parent.parent.name, path.parent.name
        if major.isdigit() and minor.isdigit():
            ids.append(int(major) * 100 + int(minor))
    return tuple(sorted(ids))


@cache
def lsst_schema(schema_id: int) -> WireSchema:
    """The self-contained alert schema of a registry id, from the lsst-alert-packet package."""
    import lsst.alert.packet as packet

    major, minor = schema_id_to_version(schema_id)
    path = Path(packet.get_schema_root()) / str(major) / str(minor)
    path = path / f"lsst.v{major}_{minor}.alert.avsc"
    if not path.exists():
        raise KeyError(f"no lsst-alert-packet schema for id {schema_id} ({path})")
    definition = _plain(packet.Schema.from_file(str(path)).definition)
    return WireSchema(
        key=str(schema_id), version=f"lsst.v{major}_{minor}", json=json.dumps(definition)
    )


#: what a live view shows of an alert
RUBIN_DISPLAY = DisplayFields(
    value="diaSource.psfFlux",
    error="diaSource.psfFluxErr",
    band="diaSource.band",
    unit="nJy",
    object_fallback="diaSource.ssObjectId",
    markers=(frozenset({"diaSource"}), frozenset({"diaSourceId", "midpointMjdTai"})),
)


@cache
def namespaces() -> tuple[str, ...]:
    """The namespace of every shipped version (``lsst.v9_0``): Rubin names its record types
    after the version, and Avro matches record types by full name."""
    return tuple(f"lsst.v{i // 100}_{i % 100}" for i in shipped_schema_ids())


def _plain(node: Any) -> Any:
    """A schema without the private keys fastavro adds when it parses one
    (``__fastavro_parsed``, ``__named_schemas``): lsst-alert-packet hands out fastavro's
    parsed form, whose copies of the named types would outlive any change to the schema and
    double its text in every Spark plan.

    >>> _plain({"type": "record", "__fastavro_parsed": True, "fields": [{"__x": 1, "name": "a"}]})
    {'type': 'record', 'fields': [{'name': 'a'}]}
    """
    if isinstance(node, dict):
        return {k: _plain(v) for k, v in node.items() if not k.startswith("__")}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


@dataclass(frozen=True, eq=False)
class RubinAdapter:
    """The Rubin Observatory LSST alert stream."""

    #: ids accepted from lsst-alert-packet (empty: every id it ships)
    schema_ids: tuple[int, ...] = ()
    #: id of the archive's reader schema (0: the newest the package ships)
    reader_id: int = 0
    #: the quality cuts of raw2science, with their thresholds
    cuts: tuple[Cut, ...] = rubin_fields.CUTS
    #: JSON configuration of the schema registry for ids the package does not know
    registry: str = ""
    name: str = RUBIN_NAME
    topic_suffix: str = "lsst"
    default_topic: str = "lsst-alerts"
    framing: Framing = "confluent_wire"
    object_id: str = "diaSource.diaObjectId"
    alert_id: str = "diaSourceId"
    time: str = "diaSource.midpointMjdTai"
    time_kind: TimeKind = "mjd_tai"
    ra: str = "diaSource.ra"
    dec: str = "diaSource.dec"
    #: plausible observation times (MJD): 2000-01-01 to 2100-01-01, simulations included
    era: tuple[float, float] = (51544.0, 88069.0)
    canonical: Mapping[str, Transform] = field(default_factory=lambda: rubin_fields.CANONICAL)
    display: DisplayFields = RUBIN_DISPLAY
    #: fields renamed between versions, as aliases of the reader schema
    renamed: tuple[tuple[str, tuple[str, ...]], ...] = RENAMED
    _encoders: dict[int, Any] = field(default_factory=dict, repr=False)

    @property
    def ids(self) -> tuple[int, ...]:
        """The accepted schema ids."""
        return self.schema_ids or shipped_schema_ids()

    @property
    def accepted(self) -> tuple[WireSchema, ...]:
        """One writer schema per accepted id."""
        return tuple(lsst_schema(i) for i in self.ids)

    @property
    def reader(self) -> WireSchema:
        """The archive's reader schema: the configured version, every field optional."""
        return reader_schema(
            lsst_schema(self.reader_id or shipped_schema_ids()[-1]),
            self.renamed,
            RENAMED_TYPES,
            namespaces(),
        )

    def wire_schemas(self) -> list[WireSchema]:
        """The accepted writer schemas, as a list."""
        return list(self.accepted)

    def schema_version(self, version: str) -> WireSchema:
        """The shipped schema of a version name (``11.1``, ``lsst.v7_4``, ``704``)."""
        return lsst_schema(version_to_schema_id(version))

    def writer_of(self, schema: Mapping[str, Any]) -> WireSchema | None:
        """The accepted version a file's writer schema is, if any (see ``match_writer``)."""
        return match_writer(self.accepted, schema)

    def encode(self, record: Mapping[str, Any], schema: WireSchema | int | None = None) -> bytes:
        """Confluent wire format: magic 0, big-endian schema id, schemaless Avro body.

        ``schema`` is a shipped schema or its id (default: the version the record was
        written in, :func:`record_writer`). Fields of the record that the schema does not
        have (e.g. a broker's own additions in archived alerts) are not written.
        """
        if isinstance(schema, WireSchema):
            schema_id = int(schema.key)
        elif schema is None:
            schema_id = int(record_writer(self.accepted, record).key)
        else:
            schema_id = schema
        parsed = self._encoders.get(schema_id)
        if parsed is None:
            parsed = self._encoders[schema_id] = lsst_schema(schema_id).parsed
        buf = io.BytesIO()
        buf.write(struct.pack(">bI", 0, schema_id))
        fastavro.schemaless_writer(buf, parsed, record)
        return buf.getvalue()

    def with_fresh_ids(self, record: dict[str, Any], copy_index: int) -> dict[str, Any]:
        """Shift every diaSource/diaObject id of copy ``k`` by ``k * ID_STRIDE``.

        >>> a = {"diaSourceId": 7, "diaSource": {"diaSourceId": 7, "diaObjectId": 3,
        ...      "ssObjectId": None}, "diaObject": None, "ssSource": None,
        ...      "prvDiaSources": None, "prvDiaForcedSources": [{"diaForcedSourceId": 1,
        ...      "diaObjectId": 3}]}
        >>> b = RubinAdapter().with_fresh_ids(a, 1)
        >>> b["diaSourceId"], b["diaSource"]["diaObjectId"], b["prvDiaForcedSources"][0]
        (10000000007, 10000000003, {'diaForcedSourceId': 10000000001, 'diaObjectId': 10000000003})
        """
        if copy_index == 0:
            return record
        shift = copy_index * ID_STRIDE

        def bump(sub: Mapping[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
            return {
                k: (v + shift if k in names and isinstance(v, int) and v > 0 else v)
                for k, v in sub.items()
            }

        out = dict(record)
        for path, names in _ID_FIELDS:
            if not path:
                out = bump(out, names)
            elif out.get(path) is not None:
                out[path] = bump(out[path], names)
        for path, names in _ID_LISTS:
            if out.get(path):
                out[path] = [bump(item, names) for item in out[path]]
        return out

    @classmethod
    def from_settings(cls, settings: Any) -> RubinAdapter:
        """The adapter the configuration describes: accepted ids, reader, registry, cuts."""
        s2r = settings.stream2raw
        shipped = shipped_schema_ids()
        unknown = sorted(set(s2r.rubin_schema_ids) - set(shipped))
        if unknown:
            raise ValueError(
                f"stream2raw.rubin_schema_ids {unknown} are not shipped by lsst-alert-packet "
                f"(it has {', '.join(map(str, shipped))}); unknown ids go to the registry"
            )
        reader_id = version_to_schema_id(s2r.rubin_reader_schema) if s2r.rubin_reader_schema else 0
        if reader_id and reader_id not in shipped:
            raise ValueError(
                f"stream2raw.rubin_reader_schema {s2r.rubin_reader_schema!r} is not shipped"
            )
        cuts = rubin_fields.quality_cuts(reliability_min=settings.raw2science.rubin_reliability_min)
        return cls(
            schema_ids=tuple(s2r.rubin_schema_ids),
            reader_id=reader_id,
            cuts=cuts,
            registry=registry_config(settings),
        )


def registry_config(settings: Any) -> str:
    """The schema registry's configuration for the executors, as JSON ('' without one).

    It names where the password is (a variable or a file), never the password itself, so it
    can sit in a Spark plan.
    """
    s2r = settings.stream2raw
    if not s2r.schema_registry_url:
        return ""
    cache_dir = s2r.schema_cache_dir or str(Path(settings.paths.state_dir) / "schemas")
    return json.dumps(
        {
            "url": s2r.schema_registry_url,
            "username": s2r.schema_registry_username,
            "password_env": s2r.schema_registry_password_env,
            "password_file": s2r.schema_registry_password_file,
            "cache_dir": str(Path(cache_dir).expanduser().resolve()),
            "timeout_ms": int(s2r.schema_registry_timeout_s * 1000),
            "retry_s": int(s2r.schema_registry_retry_s),
        },
        sort_keys=True,
    )


RUBIN = RubinAdapter()
