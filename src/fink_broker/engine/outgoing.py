"""Fink's outgoing Kafka format: schemaless Avro value, the writer schema as the message key.

This is the convention the PyPI ``fink-client`` reads (``key`` = the full Avro schema as JSON
text, ``value`` = the record without container or registry framing), so a client decodes any
topic without a schema registry. The schema is derived by Spark from the published columns
(``SchemaConverters.toAvroType``), so it always matches the declared science columns: there
is no hand-written schema file to drift.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.avro.functions import to_avro

from fink_broker.engine.archived_shape import nullable
from fink_broker.engine.session import jvm_class

#: Avro record name and namespace of published alerts
RECORD_NAME = "alert"
NAMESPACE = "fink"


def avro_schema_json(
    spark: SparkSession,
    schema: T.StructType,
    name: str = RECORD_NAME,
    namespace: str = NAMESPACE,
) -> str:
    """The Avro schema (JSON text) Spark's ``to_avro`` writes for rows of ``schema``."""
    jtype = spark._jsparkSession.parseDataType(schema.json())
    converters = jvm_class(spark, "org.apache.spark.sql.avro.SchemaConverters")
    avro = converters.toAvroType(jtype, False, name, namespace)
    return json.dumps(json.loads(avro.toString()))


def published_columns(df: DataFrame, publish: Sequence[str] | None, cutouts: bool) -> list[str]:
    """Columns that go out: the declared ``publish`` list, else the whole enriched alert.

    Cutouts (binary columns named ``cutout*``) are dropped unless ``cutouts`` is set; they
    triple the message size and most consumers fetch them on demand from the API.
    """
    names = list(publish) if publish else list(df.columns)
    if not cutouts:
        names = [n for n in names if not n.startswith("cutout")]
    return names


def key_value(spark: SparkSession, df: DataFrame, columns: Sequence[str]) -> tuple[Column, Column]:
    """(key, value) columns of the outgoing messages for rows of ``df``.

    The writer schema makes every field nullable: a read of the science archive is, the
    one-pass pipeline's in-memory rows are not, and both must publish the same bytes.
    """
    struct_type = nullable(T.StructType([df.schema[c] for c in columns]))
    assert isinstance(struct_type, T.StructType)
    schema = avro_schema_json(spark, struct_type)
    value = to_avro(F.struct(*[F.col(c) for c in columns]), schema)
    return F.lit(schema).cast("binary"), value
