"""Kafka records -> survey alerts, on the JVM.

The alert keeps the survey's own field names and nesting (ZTF ``candidate`` struct,
``prv_candidates`` array of structs, cutouts as binary). Decoding runs inside the JVM with
Spark's ``from_avro``, once Fink's Java functions have peeled the framing: Rubin's Confluent
wire format (``fink_confluent_frame``) and ZTF's one container file per message
(``fink_avro_container``).
No Python worker sees the alert bytes.

Every record gets an ``error``: null when it decoded, otherwise the reason it goes to
quarantine (framing, unknown schema, malformed body). Nothing is dropped here.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.avro.functions import from_avro

from fink_broker import __version__
from fink_broker.engine.built_columns import BuiltColumns
from fink_broker.engine.session import now
from fink_broker.surveys.base import TAI_MINUS_UTC_SECONDS, SurveyAdapter, WireSchema

#: Kafka metadata kept with every alert and quarantined message
KAFKA_COLUMNS = {
    "topic": "kafka_topic",
    "partition": "kafka_partition",
    "offset": "kafka_offset",
    "timestamp": "kafka_timestamp",
}

#: seconds between the Unix epoch and JD 0 / MJD 0
JD_UNIX_EPOCH = 2440587.5
MJD_UNIX_EPOCH = 40587.0


def night_of(time: Column, kind: str) -> Column:
    """Observing night ``YYYYMMDD``: the UTC date of the observation.

    Both sites observe within one UTC date (Palomar UTC-8: ~04-14 h UT; Cerro Pachon
    UTC-4: ~00-10 h UT), so the UTC date is the night without a per-site offset.
    """
    if kind == "jd":
        seconds = (time - F.lit(JD_UNIX_EPOCH)) * F.lit(86400.0)
    elif kind == "mjd_tai":
        seconds = (time - F.lit(MJD_UNIX_EPOCH)) * F.lit(86400.0) - F.lit(TAI_MINUS_UTC_SECONDS)
    else:
        raise ValueError(f"unknown time kind {kind}")
    return F.date_format(F.timestamp_seconds(seconds), "yyyyMMdd")


#: survey framing -> Fink's Java function that unwraps it (``infra/java``)
FRAMING_FUNCTIONS = {
    "confluent_wire": "fink_confluent_frame",
    "avro_container": "fink_avro_container",
}


def _frame(value: Column, adapter: SurveyAdapter) -> Column:
    """A struct (payload, schema_key, error): the Avro body and the framing verdict.

    Computed in a projection of its own so that the framing function runs once per
    message even though three columns derive from it.
    """
    if adapter.framing not in FRAMING_FUNCTIONS:
        raise ValueError(f"unknown framing {adapter.framing}")
    return F.call_function(FRAMING_FUNCTIONS[adapter.framing], value)


@dataclass(frozen=True)
class _Projections:
    """The select lists of :func:`decode` and :func:`archive_columns`, in order."""

    framed: list[Column]
    checked: list[Column]
    with_alert: list[Column]
    decoded: list[Column]
    archived: list[Column]


#: projections by (survey, framing, alert id, time, accepted schema): built once per stream
_PROJECTIONS = BuiltColumns[_Projections]()


def _projections(adapter: SurveyAdapter, schema: WireSchema) -> _Projections:
    key = (adapter.name, adapter.framing, adapter.alert_id, adapter.time, schema.key)
    return _PROJECTIONS.get(key, functools.partial(_build_projections, adapter, schema))


def _build_projections(adapter: SurveyAdapter, schema: WireSchema) -> _Projections:
    framed = [
        F.col("value"),
        *[F.col(src).alias(dst) for src, dst in KAFKA_COLUMNS.items()],
        _frame(F.col("value"), adapter).alias("frame"),
    ]
    key = F.col("frame.schema_key")
    frame_error = F.coalesce(
        F.col("frame.error"),
        F.when(
            key != F.lit(schema.key),
            F.concat(
                F.lit("unknown schema "),
                key,
                F.lit(f" (accepted: {schema.key} = {schema.version})"),
            ),
        ),
    )
    kafka = [F.col(c) for c in KAFKA_COLUMNS.values()]
    checked = [F.col("value"), *kafka, F.col("frame.payload"), frame_error.alias("frame_error")]
    alert = from_avro(F.col("payload"), schema.json, {"mode": "PERMISSIVE"})
    with_alert = [
        F.col("value"),
        *kafka,
        F.col("frame_error"),
        F.when(F.col("frame_error").isNull(), alert).alias("alert"),
    ]
    undecodable = F.lit(f"Avro body does not decode with {schema.version} (malformed or truncated)")
    # PERMISSIVE from_avro returns a struct of nulls (not a null struct) for a bad body; the
    # alert id is a non-null field of every schema, so its absence marks the failure.
    failed = F.col("alert").isNull() | F.col(f"alert.{adapter.alert_id}").isNull()
    error = F.coalesce(F.col("frame_error"), F.when(failed, undecodable))
    decoded = [
        # the raw bytes are only kept for the quarantine: a decoded alert does not carry them
        F.when(error.isNotNull(), F.col("value")).alias("value"),
        *kafka,
        F.when(~failed, F.col("alert")).alias("alert"),
        error.alias("error"),
    ]
    archived = [
        F.col("alert.*"),
        *kafka,
        now().alias("fink_ingest_time"),
        F.lit(__version__).alias("fink_broker_version"),
        night_of(F.col(f"alert.{adapter.time}"), adapter.time_kind).alias("night"),
    ]
    return _Projections(framed, checked, with_alert, decoded, archived)


def decode(kafka: DataFrame, adapter: SurveyAdapter, schema: WireSchema | None = None) -> DataFrame:
    """Kafka source rows -> rows with ``alert`` (struct), ``error`` and Kafka metadata.

    ``schema`` is the one wire schema accepted for the archive (default: the adapter's
    first); messages in another schema version are quarantined with that reason, because
    one raw archive holds one schema.
    """
    plan = _projections(adapter, schema or adapter.wire_schemas()[0])
    return (
        kafka.select(*plan.framed)
        .select(*plan.checked)
        .select(*plan.with_alert)
        .select(*plan.decoded)
    )


def archive_columns(decoded: DataFrame, adapter: SurveyAdapter) -> DataFrame:
    """Decoded alerts as archived: survey fields + Kafka metadata + provenance + night."""
    plan = _projections(adapter, adapter.wire_schemas()[0])
    return decoded.where(F.col("error").isNull()).select(*plan.archived)


def quarantine_columns(decoded: DataFrame) -> DataFrame:
    """Undecodable messages: raw bytes, where they came from, why, and the ingest night."""
    return (
        decoded.where(F.col("error").isNotNull())
        .withColumn("fink_ingest_time", now())
        .select(
            "value",
            *KAFKA_COLUMNS.values(),
            "error",
            "fink_ingest_time",
            F.date_format("fink_ingest_time", "yyyyMMdd").alias("night"),
        )
    )
