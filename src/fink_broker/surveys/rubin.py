"""Rubin/LSST: Confluent wire format, MJD TAI times, nJy fluxes, 64-bit integer ids."""

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

from fink_broker.surveys.base import Framing, TimeKind, WireSchema

#: replay copy k shifts every diaSource/diaObject id by k * this: the ids of one visit span
#: ~1e9, and 9e8 copies still fit in a signed 64-bit integer
ID_STRIDE = 10**10

#: (path to a record holding ids, the id fields shifted in it)
_ID_FIELDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("", ("diaSourceId",)),
    ("diaSource", ("diaSourceId", "diaObjectId", "ssObjectId")),
    ("diaObject", ("diaObjectId",)),
    ("ssSource", ("diaSourceId", "ssObjectId")),
)
_ID_LISTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("prvDiaSources", ("diaSourceId", "diaObjectId")),
    ("prvDiaForcedSources", ("diaForcedSourceId", "diaObjectId")),
)


def schema_id_to_version(schema_id: int) -> tuple[int, int]:
    """The lsst-alert-packet registry convention: id = major * 100 + minor.

    >>> schema_id_to_version(900), schema_id_to_version(1001)
    ((9, 0), (10, 1))
    """
    return schema_id // 100, schema_id % 100


@cache
def lsst_schema(schema_id: int) -> WireSchema:
    """The self-contained alert schema of a registry id, from the lsst-alert-packet package."""
    import lsst.alert.packet as packet  # heavy import, only when a Rubin schema is needed

    major, minor = schema_id_to_version(schema_id)
    path = Path(packet.get_schema_root()) / str(major) / str(minor)
    path = path / f"lsst.v{major}_{minor}.alert.avsc"
    if not path.exists():
        raise KeyError(f"no lsst-alert-packet schema for id {schema_id} ({path})")
    definition = packet.Schema.from_file(str(path)).definition
    return WireSchema(
        key=str(schema_id), version=f"lsst.v{major}_{minor}", json=json.dumps(definition)
    )


@dataclass(frozen=True)
class RubinAdapter:
    """The Rubin Observatory LSST alert stream."""

    schema_ids: tuple[int, ...] = (900,)
    name: str = "rubin"
    topic_suffix: str = "lsst"
    default_topic: str = "lsst-alerts"
    framing: Framing = "confluent_wire"
    object_id: str = "diaSource.diaObjectId"
    alert_id: str = "diaSourceId"
    time: str = "diaSource.midpointMjdTai"
    time_kind: TimeKind = "mjd_tai"
    ra: str = "diaSource.ra"
    dec: str = "diaSource.dec"
    _encoders: dict[int, Any] = field(default_factory=dict, compare=False, repr=False)

    def wire_schemas(self) -> list[WireSchema]:
        """One schema per configured registry id."""
        return [lsst_schema(i) for i in self.schema_ids]

    def encode(self, record: Mapping[str, Any], schema_id: int | None = None) -> bytes:
        """Confluent wire format: magic 0, big-endian schema id, schemaless Avro body.

        Fields of the record that the schema does not have (e.g. a broker's own additions in
        archived alerts) are not written.
        """
        schema_id = self.schema_ids[-1] if schema_id is None else schema_id
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


def rubin_adapter(schema_ids: list[int] | tuple[int, ...] = (900,)) -> RubinAdapter:
    """A Rubin adapter accepting the given registry schema ids."""
    return RubinAdapter(schema_ids=tuple(schema_ids))
