"""ZTF: one Avro object container file per Kafka message, times in JD, magnitudes.

Every container carries its writer schema, so ZTF alerts are read schema-on-read: the
packaged versions (``surveys/schemas/ztf``: 3.3 and 4.02, from the public
``ZwickyTransientFacility/ztf-avro-alert`` repository) are decoded by the plan directly,
any other writer schema through the container's own text, and all of them resolve into the
archive's reader schema (:mod:`fink_broker.surveys.resolution`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from fink_broker.surveys import ztf_fields
from fink_broker.surveys.base import (
    DisplayFields,
    Framing,
    TimeKind,
    WireSchema,
    container_bytes,
    match_writer,
    reader_schema,
    record_writer,
    schema_fingerprint,
)
from fink_broker.surveys.fields import Cut, Transform
from fink_broker.surveys.names import ZTF_NAME

#: fresh identifiers of replay copy k shift candid by k * this (candids of one night span
#: far less, and 80 000 copies still fit in a signed 64-bit integer)
CANDID_STRIDE = 10**14
#: the archive's reader schema by default: ZTF's current schema, with forced photometry
DEFAULT_READER = "4.02"


@cache
def packaged_schemas() -> tuple[WireSchema, ...]:
    """The ZTF schema versions shipped with the broker, oldest first."""
    folder = resources.files("fink_broker.surveys") / "schemas" / "ztf"
    out = []
    for entry in folder.iterdir():
        if entry.name.endswith(".avsc"):
            schema = json.loads(entry.read_text())
            version = entry.name.removeprefix("ztf.alert.").removesuffix(".avsc")
            out.append(
                WireSchema(key=schema_fingerprint(schema), version=version, json=json.dumps(schema))
            )
    return tuple(sorted(out, key=lambda w: tuple(int(p) for p in w.version.split("."))))


def packaged_schema(version: str) -> WireSchema:
    """The packaged ZTF schema of a version (``3.3``, ``4.02``).

    >>> packaged_schema("4.02").version
    '4.02'
    """
    for wire in packaged_schemas():
        if wire.version == version.removeprefix("ztf "):
            return wire
    known = ", ".join(w.version for w in packaged_schemas())
    raise ValueError(f"no packaged ZTF schema {version!r}; known: {known}")


#: what a live view shows of an alert
ZTF_DISPLAY = DisplayFields(
    value="candidate.magpsf",
    error="candidate.sigmapsf",
    band="candidate.fid",
    unit="mag",
    band_names=ztf_fields.FID_TO_BAND,
    markers=(frozenset({"candidate"}), frozenset({"candid", "jd"})),
)


@dataclass(frozen=True, eq=False)
class ZtfAdapter:
    """The Zwicky Transient Facility alert stream."""

    #: version of the archive's reader schema (a packaged one)
    reader_version: str = DEFAULT_READER
    #: the quality cuts of raw2science, with their thresholds
    cuts: tuple[Cut, ...] = ztf_fields.CUTS
    name: str = ZTF_NAME
    topic_suffix: str = "ztf"
    default_topic: str = "ztf_{night}_programid1"
    framing: Framing = "avro_container"
    object_id: str = "objectId"
    alert_id: str = "candid"
    time: str = "candidate.jd"
    time_kind: TimeKind = "jd"
    ra: str = "candidate.ra"
    dec: str = "candidate.dec"
    #: the earliest and latest plausible observation time (JD): ZTF first light was in 2017,
    #: and a time past 2100 is a corrupt alert, not an observation
    era: tuple[float, float] = (2457754.5, 2488069.5)
    canonical: Mapping[str, Transform] = field(default_factory=lambda: ztf_fields.CANONICAL)
    display: DisplayFields = ZTF_DISPLAY
    registry: str = ""
    #: fields renamed between versions (none in ZTF's history)
    renamed: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def accepted(self) -> tuple[WireSchema, ...]:
        """The writer schemas the plan decodes directly: every packaged version."""
        return packaged_schemas()

    @property
    def reader(self) -> WireSchema:
        """The archive's reader schema: the configured version with every field optional."""
        return reader_schema(packaged_schema(self.reader_version))

    def wire_schemas(self) -> list[WireSchema]:
        """The schema versions the plan knows (see :attr:`accepted`)."""
        return list(self.accepted)

    def schema_version(self, version: str) -> WireSchema:
        """The packaged schema of a version name (``3.3``, ``4.02``)."""
        return packaged_schema(version)

    def writer_of(self, schema: Mapping[str, Any]) -> WireSchema | None:
        """The packaged version a file's writer schema is, if any (see ``match_writer``)."""
        return match_writer(self.accepted, schema)

    def encode(self, record: Mapping[str, Any], schema: WireSchema | None = None) -> bytes:
        """A container file, as ZTF's Kafka carries it, with ``schema`` (default: the version
        the record was written in, :func:`record_writer`)."""
        wire = schema or record_writer(self.accepted, record)
        return container_bytes(record, wire.parsed)

    def with_fresh_ids(self, record: dict[str, Any], copy_index: int) -> dict[str, Any]:
        """Copy ``k`` gets objectId ``<id>_k`` and candid shifted by ``k * CANDID_STRIDE``.

        >>> a = {"objectId": "ZTF20aaa", "candid": 5, "candidate": {"candid": 5},
        ...      "prv_candidates": [{"candid": 3}, {"candid": None}]}
        >>> b = ZtfAdapter().with_fresh_ids(a, 2)
        >>> b["objectId"], b["candid"], b["candidate"]["candid"], b["prv_candidates"][0]["candid"]
        ('ZTF20aaa_2', 200000000000005, 200000000000005, 200000000000003)
        >>> a["candid"]
        5
        """
        if copy_index == 0:
            return record
        shift = copy_index * CANDID_STRIDE
        if record["candid"] + shift >= 2**63:
            raise ValueError(f"copy {copy_index} overflows the 64-bit candid")
        out = dict(record)
        out["objectId"] = f"{record['objectId']}_{copy_index}"
        out["candid"] = record["candid"] + shift
        out["candidate"] = {**record["candidate"], "candid": record["candidate"]["candid"] + shift}
        out["prv_candidates"] = [
            {**prv, "candid": prv["candid"] + shift if prv.get("candid") is not None else None}
            for prv in (record.get("prv_candidates") or [])
        ] or record.get("prv_candidates")
        return out

    @classmethod
    def from_settings(cls, settings: Any) -> ZtfAdapter:
        """The adapter the configuration describes (reader version, cut thresholds)."""
        r2s = settings.raw2science
        cuts = ztf_fields.quality_cuts(
            nbad_max=r2s.ztf_nbad_max, rb_min=r2s.ztf_rb_min, drop_i_band=r2s.ztf_drop_i_band
        )
        return cls(reader_version=settings.stream2raw.ztf_reader_schema, cuts=cuts)


ZTF = ZtfAdapter()
