"""Field-by-field comparison of a decoded alert (Spark Row as dict) with a fastavro record."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


def differences(expected: Any, actual: Any, path: str = "") -> list[str]:
    """Every path where ``actual`` differs from ``expected`` (fastavro's record).

    Only the fields of ``expected`` are compared when it is a mapping; bytes compare as bytes
    (Spark returns bytearray), floats exactly (both sides hold the same IEEE value).
    """
    if isinstance(expected, Mapping):
        if not isinstance(actual, Mapping):
            return [f"{path}: expected a record, got {type(actual).__name__}"]
        out: list[str] = []
        for key, value in expected.items():
            if key not in actual:
                out.append(f"{path}.{key}: missing")
            else:
                out += differences(value, actual[key], f"{path}.{key}")
        return out
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{path}: expected a list of {len(expected)}, got {actual!r:.80}"]
        out = []
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            out += differences(e, a, f"{path}[{i}]")
        return out
    if isinstance(expected, bytes | bytearray):
        return (
            []
            if bytes(expected) == bytes(actual or b"") and actual is not None
            else [f"{path}: bytes differ"]
        )
    if isinstance(expected, float) and isinstance(actual, float) and math.isnan(expected):
        return [] if math.isnan(actual) else [f"{path}: expected nan, got {actual}"]
    if expected != actual:
        return [f"{path}: expected {expected!r:.60}, got {actual!r:.60}"]
    return []


def as_archived(adapter: Any, record: Mapping[str, Any]) -> dict[str, Any]:
    """``record`` as the raw archive holds it: written in the version it has the fields of,
    then read by fastavro into the adapter's reader schema (Avro's resolution rules, as
    fastavro implements them: an independent reference for Spark's)."""
    import io

    import fastavro

    from fink_broker.surveys.base import record_writer

    wire = record_writer(adapter.accepted, record)
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, wire.parsed, record)
    buf.seek(0)
    return fastavro.schemaless_reader(buf, wire.parsed, adapter.reader.parsed)
