"""ZTF: one Avro object container file per Kafka message, times in JD, magnitudes."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from fink_broker.surveys.base import (
    Framing,
    TimeKind,
    WireSchema,
    container_bytes,
    schema_fingerprint,
)

#: fresh identifiers of replay copy k shift candid by k * this (candids of one night span
#: far less, and 80 000 copies still fit in a signed 64-bit integer)
CANDID_STRIDE = 10**14


@cache
def _packaged_schemas() -> tuple[WireSchema, ...]:
    folder = resources.files("fink_broker.surveys") / "schemas" / "ztf"
    out = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".avsc"):
            schema = json.loads(entry.read_text())
            version = entry.name.removeprefix("ztf.alert.").removesuffix(".avsc")
            out.append(
                WireSchema(
                    key=schema_fingerprint(schema),
                    version=f"ztf {version}",
                    json=json.dumps(schema),
                )
            )
    return tuple(out)


@cache
def _newest_parsed() -> dict[str, Any]:
    """Parsing the 23 kB schema costs 0.4 ms: once per process, not once per alert."""
    return _packaged_schemas()[-1].parsed


@dataclass(frozen=True)
class ZtfAdapter:
    """The Zwicky Transient Facility alert stream (schema 3.3)."""

    name: str = "ztf"
    topic_suffix: str = "ztf"
    default_topic: str = "ztf_{night}_programid1"
    framing: Framing = "avro_container"
    object_id: str = "objectId"
    alert_id: str = "candid"
    time: str = "candidate.jd"
    time_kind: TimeKind = "jd"
    ra: str = "candidate.ra"
    dec: str = "candidate.dec"

    def wire_schemas(self) -> list[WireSchema]:
        """The ZTF schema versions shipped with the broker (``surveys/schemas/ztf``)."""
        return list(_packaged_schemas())

    def encode(self, record: Mapping[str, Any]) -> bytes:
        """A container file with the newest packaged schema, as ZTF's Kafka carries it."""
        return container_bytes(record, _newest_parsed())

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


ZTF = ZtfAdapter()
