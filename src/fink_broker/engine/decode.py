"""Kafka records -> survey alerts in the archive's reader schema, on the JVM.

The alert keeps the survey's own field names and nesting (ZTF ``candidate`` struct,
``prv_candidates`` array of structs, cutouts as binary). Fink's Java functions peel the
framing (Rubin's Confluent wire format, ``fink_confluent_frame``; ZTF's container files,
``fink_avro_container``, one row per record of the container), then Spark's ``from_avro``
decodes each record with the writer schema it was sent in and resolves it into the reader
schema as it reads (``avroSchema``: Avro's own resolution rules). A writer schema the plan
does not know goes through Fink's Java resolver first: the container's own schema (ZTF) or
the schema registry's (Rubin), re-encoded in the reader schema
(``infra/java/.../SchemaResolution.java``). No Python worker sees the alert bytes.

Every record gets an ``error``: null when it decoded, otherwise the reason it goes to
quarantine (framing, size, unknown or unresolvable schema, malformed body, impossible time).
Nothing is dropped here.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.avro.functions import from_avro

from fink_broker import __version__
from fink_broker.engine.built_columns import BuiltColumns
from fink_broker.engine.session import jvm_class, now
from fink_broker.surveys.base import TAI_MINUS_UTC_SECONDS, SurveyAdapter, WireSchema

#: Kafka metadata kept with every alert and quarantined message
KAFKA_COLUMNS = {
    "topic": "kafka_topic",
    "partition": "kafka_partition",
    "offset": "kafka_offset",
    "timestamp": "kafka_timestamp",
}
#: the index of the record in its Kafka message: 0, but for a container of several records
RECORD_COLUMN = "kafka_record"
#: when the broker archived the alert
INGEST_TIME = "fink_ingest_time"

#: seconds between the Unix epoch and JD 0 / MJD 0
JD_UNIX_EPOCH = 2440587.5
MJD_UNIX_EPOCH = 40587.0

#: the default bound on a message's decoded size (``stream2raw.max_decoded_mb``)
DEFAULT_MAX_DECODED_BYTES = 64 * 2**20


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


def _frame(value: Column, adapter: SurveyAdapter, max_bytes: int) -> Column:
    """A struct (payloads, schema_key, error): the Avro body of each record, and the verdict.

    Computed in a projection of its own so that the framing function runs once per
    message even though several columns derive from it.
    """
    if adapter.framing == "avro_container":
        return F.call_function("fink_avro_container", value, F.lit(max_bytes))
    if adapter.framing == "confluent_wire":
        return F.call_function("fink_confluent_frame", value)
    raise ValueError(f"unknown framing {adapter.framing}")


@dataclass(frozen=True)
class _Projections:
    """The select lists of :func:`decode` and :func:`archive_columns`, in order."""

    framed: list[Column]
    records: list[Column]
    resolved: list[Column]
    with_alert: list[Column]
    decoded: list[Column]
    archived: list[Column]
    #: the position of ``INGEST_TIME`` in ``archived``
    ingest_at: int


@dataclass(frozen=True)
class Resolvability:
    """Whether each accepted writer schema resolves into the reader, as Avro's Java library
    judges it (``SchemaCompatibility``): the reason, for those that do not."""

    problems: dict[str, str]

    @classmethod
    def check(cls, spark: SparkSession, adapter: SurveyAdapter) -> Resolvability:
        """Check every accepted schema against the adapter's reader, once per plan."""
        parser = jvm_class(spark, "org.apache.avro.Schema$Parser")
        compatibility = jvm_class(spark, "org.apache.avro.SchemaCompatibility")
        reader = parser().setValidateDefaults(False).parse(adapter.reader.json)
        problems = {}
        for wire in adapter.accepted:
            writer = parser().setValidateDefaults(False).parse(wire.json)
            result = compatibility.checkReaderWriterCompatibility(reader, writer).getResult()
            if result.getCompatibility().toString() != "COMPATIBLE":
                where = jvm_class(spark, "org.fink.broker.SchemaResolution").fieldPath
                found = [
                    f"{where(reader, i.getLocation())} ({i.getType().toString()}): {i.getMessage()}"
                    for i in result.getIncompatibilities()
                ]
                problems[wire.key] = "; ".join(found[:3])
        return cls(problems)


#: projections by (survey, framing, alert id, time, schemas, size bound): built once per stream
_PROJECTIONS = BuiltColumns[_Projections]()


def _projections(spark: SparkSession, adapter: SurveyAdapter, max_bytes: int) -> _Projections:
    key = (
        adapter.name,
        adapter.framing,
        adapter.alert_id,
        adapter.time,
        adapter.era,
        adapter.reader.key,
        tuple(w.key for w in adapter.accepted),
        adapter.registry,
        max_bytes,
    )
    return _PROJECTIONS.get(key, functools.partial(_build_projections, spark, adapter, max_bytes))


def _unknown_schema(adapter: SurveyAdapter, key: Column) -> Column:
    """The resolution of a record whose writer schema the plan does not know: a struct
    (payload in the reader schema, error)."""
    reader = F.lit(adapter.reader.json)
    if adapter.framing == "avro_container":  # the container carries its writer schema
        return F.call_function("fink_container_resolve", F.col("value"), F.col("payload"), reader)
    if adapter.registry:
        return F.call_function(
            "fink_registry_resolve", F.col("payload"), key, reader, F.lit(adapter.registry)
        )
    accepted = ", ".join(w.key for w in adapter.accepted)
    return F.struct(
        F.lit(None).cast("binary").alias("payload"),
        F.concat(
            F.lit("unknown schema "),
            key,
            F.lit(f" (not in the accepted {accepted}, and no schema registry is configured)"),
        ).alias("error"),
    )


def _decoded_alert(adapter: SurveyAdapter, known: dict[str, WireSchema]) -> Column:
    """The alert in the reader schema: one ``from_avro`` per known writer schema, resolving
    as it reads, and the reader's own for records the Java resolver re-encoded."""
    reader = adapter.reader.json
    options = {"avroSchema": reader, "mode": "PERMISSIVE"}
    key = F.col("schema_key")
    alert: Column | None = None
    for wire in known.values():
        branch = from_avro(F.col("payload"), wire.json, options)
        alert = (F.when if alert is None else alert.when)(key == F.lit(wire.key), branch)
    resolved = from_avro(F.col("resolved.payload"), reader, {"mode": "PERMISSIVE"})
    return resolved if alert is None else alert.otherwise(resolved)


def _time_error(adapter: SurveyAdapter) -> Column:
    """Why the alert's observation time is impossible, if it is: not finite, or outside the
    survey's era (a corrupt time would file the alert under a night that never was)."""
    time = F.col(f"alert.{adapter.time}")
    low, high = adapter.era
    bad = time.isNull() | F.isnan(time) | (time < F.lit(low)) | (time > F.lit(high))
    return F.when(
        bad,
        F.concat(
            F.lit(f"observation time {adapter.time} "),
            F.coalesce(time.cast("string"), F.lit("null")),
            F.lit(f" is not finite or outside the survey's era [{low}, {high}]"),
        ),
    )


def _build_projections(spark: SparkSession, adapter: SurveyAdapter, max_bytes: int) -> _Projections:
    kafka = [F.col(c) for c in KAFKA_COLUMNS.values()]
    framed = [
        F.col("value"),
        *[F.col(src).alias(dst) for src, dst in KAFKA_COLUMNS.items()],
        _frame(F.col("value"), adapter, max_bytes).alias("frame"),
    ]
    # one row per record; a message that did not frame keeps one row (posexplode_outer)
    records = [
        F.col("value"),
        *kafka,
        F.col("frame.schema_key").alias("schema_key"),
        F.col("frame.error").alias("frame_error"),
        F.posexplode_outer("frame.payloads").alias(RECORD_COLUMN, "payload"),
    ]
    problems = Resolvability.check(spark, adapter).problems
    known = {w.key: w for w in adapter.accepted if w.key not in problems}
    key = F.col("schema_key")
    accepted = [w.key for w in adapter.accepted]
    unresolvable: Column = F.lit(None).cast("string")
    for wire_key, why in problems.items():
        reason = f"schema {wire_key} does not resolve into the reader {adapter.reader.version}"
        unresolvable = F.when(key == F.lit(wire_key), F.lit(f"{reason}: {why}")).otherwise(
            unresolvable
        )
    needs_resolver = F.col("frame_error").isNull() & ~key.isin(accepted)
    resolved = [
        F.col("value"),
        *kafka,
        F.coalesce(F.col(RECORD_COLUMN), F.lit(0)).alias(RECORD_COLUMN),
        F.col("schema_key"),
        F.col("payload"),
        F.col("frame_error"),
        F.when(needs_resolver, _unknown_schema(adapter, key)).alias("resolved"),
        unresolvable.alias("unresolvable"),
    ]
    early_error = F.coalesce(F.col("frame_error"), F.col("unresolvable"), F.col("resolved.error"))
    with_alert = [
        F.col("value"),
        *kafka,
        F.col(RECORD_COLUMN),
        early_error.alias("early_error"),
        F.when(early_error.isNull(), _decoded_alert(adapter, known)).alias("alert"),
    ]
    undecodable = F.lit("Avro body does not decode (malformed or truncated)")
    # PERMISSIVE from_avro returns a struct of nulls (not a null struct) for a bad body; the
    # alert id is a field of every alert, so its absence marks the failure.
    failed = F.col("alert").isNull() | F.col(f"alert.{adapter.alert_id}").isNull()
    error = F.coalesce(F.col("early_error"), F.when(failed, undecodable), _time_error(adapter))
    decoded = [
        # the raw bytes are only kept for the quarantine: a decoded alert does not carry them
        F.when(error.isNotNull(), F.col("value")).alias("value"),
        *kafka,
        F.col(RECORD_COLUMN),
        F.when(error.isNull(), F.col("alert")).alias("alert"),
        error.alias("error"),
    ]
    archived = [
        F.col("alert.*"),
        *kafka,
        F.col(RECORD_COLUMN),
    ]
    ingest_at = len(archived)
    archived += [
        now().alias(INGEST_TIME),
        F.lit(__version__).alias("fink_broker_version"),
        night_of(F.col(f"alert.{adapter.time}"), adapter.time_kind).alias("night"),
    ]
    return _Projections(framed, records, resolved, with_alert, decoded, archived, ingest_at)


def decode(
    kafka: DataFrame, adapter: SurveyAdapter, max_bytes: int = DEFAULT_MAX_DECODED_BYTES
) -> DataFrame:
    """Kafka source rows -> one row per record: ``alert`` (struct in the reader schema),
    ``error``, Kafka metadata and the record's index in its message."""
    plan = _projections(kafka.sparkSession, adapter, max_bytes)
    return (
        kafka.select(*plan.framed)
        .select(*plan.records)
        .select(*plan.resolved)
        .select(*plan.with_alert)
        .select(*plan.decoded)
    )


def archive_columns(
    decoded: DataFrame, adapter: SurveyAdapter, max_bytes: int = DEFAULT_MAX_DECODED_BYTES
) -> DataFrame:
    """Decoded alerts as archived: survey fields + Kafka metadata + provenance + night.

    The ingest time is read as the row is archived, unless ``decoded`` already holds one
    (``INGEST_TIME``): the one-pass pipeline stamps its cached batch once, so the raw and
    the science archives, which both read it, carry the same time.
    """
    plan = _projections(decoded.sparkSession, adapter, max_bytes)
    columns = list(plan.archived)
    if INGEST_TIME in decoded.columns:
        columns[plan.ingest_at] = F.col(INGEST_TIME)
    return decoded.where(F.col("error").isNull()).select(*columns)


def quarantine_columns(decoded: DataFrame) -> DataFrame:
    """Undecodable records: the message's bytes, where they came from, why, and the ingest
    night."""
    return (
        decoded.where(F.col("error").isNotNull())
        .withColumn("fink_ingest_time", now())
        .select(
            "value",
            *KAFKA_COLUMNS.values(),
            RECORD_COLUMN,
            "error",
            "fink_ingest_time",
            F.date_format("fink_ingest_time", "yyyyMMdd").alias("night"),
        )
    )
