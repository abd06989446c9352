"""Exactly-once Parquet writes from inside ``foreachBatch``.

``writeStream.format("parquet")`` is exactly-once but feeds one folder per query; stream2raw
must feed two (archive and quarantine) from one decode. ``ExactlyOnceParquet`` (infra/java)
drives Spark's own file sink per folder, so each folder keeps a ``_spark_metadata`` commit
log, skips a micro-batch it already committed when the query replays it after a crash, and
downstream file-source readers only ever see committed files.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from fink_broker.engine.session import jvm_class

#: Fink's Java driver of Spark's streaming file sink (infra/java)
EXACTLY_ONCE = "org.fink.broker.ExactlyOnceParquet"


def binary_leaves(schema: T.StructType, prefix: str = "") -> list[str]:
    """Parquet column paths of the binary fields of ``schema``, through nested structs.

    Arrays are not entered: their Parquet paths depend on the list layout, and no survey
    ships images inside an array.
    """
    out: list[str] = []
    for field in schema.fields:
        path = f"{prefix}{field.name}"
        if isinstance(field.dataType, T.BinaryType):
            out.append(path)
        elif isinstance(field.dataType, T.StructType):
            out.extend(binary_leaves(field.dataType, f"{path}."))
    return out


#: Parquet writer settings for binary columns (cutouts), per column path
BINARY_COLUMN_OPTIONS = {
    "parquet.enable.dictionary": "false",
    "parquet.column.statistics.enabled": "false",
    "parquet.size.statistics.enabled": "false",
}


def parquet_options(schema: T.StructType) -> dict[str, str]:
    """Writer options for a frame of alerts: binary columns without dictionary or statistics.

    Cutouts are gzipped FITS, unique per alert: Parquet still tries a dictionary for each
    binary column until the page overflows, hashing and comparing every stamp on the way
    (19% of stream2raw's executor time, JFR, 20,000 ZTF alerts), and keeps min/max
    statistics by comparing whole stamps byte by byte, for a filter nobody writes.
    """
    return {
        f"{option}#{path}": value
        for path in binary_leaves(schema)
        for option, value in BINARY_COLUMN_OPTIONS.items()
    }


def _java_strings(spark: SparkSession, values: Sequence[str]) -> object:
    """A Java String[] for a Py4J call."""
    array = spark.sparkContext._gateway.new_array(jvm_class(spark, "java.lang.String"), len(values))
    for i, value in enumerate(values):
        array[i] = value
    return array


def write_batch(
    spark: SparkSession, df: DataFrame, path: str, batch_id: int, partition_by: Sequence[str]
) -> None:
    """Write ``df`` as micro-batch ``batch_id`` of the Parquet folder ``path`` (idempotent)."""
    options = [text for pair in parquet_options(df.schema).items() for text in pair]
    jvm_class(spark, EXACTLY_ONCE).addBatch(
        spark._jsparkSession,
        path,
        _java_strings(spark, list(partition_by)),
        int(batch_id),
        df._jdf,
        _java_strings(spark, options),
    )


def committed(spark: SparkSession, path: str, batch_id: int) -> bool:
    """Whether the folder ``path`` already committed micro-batch ``batch_id`` (a replay
    after a crash): :func:`write_batch` would then write nothing."""
    return bool(jvm_class(spark, EXACTLY_ONCE).committed(spark._jsparkSession, path, int(batch_id)))


def commit_empty(spark: SparkSession, path: str, batch_id: int) -> None:
    """Record micro-batch ``batch_id`` of the folder ``path`` as written with no rows.

    The same log entry as :func:`write_batch` of an empty frame (idempotent too), without
    running a Spark job to write nothing.
    """
    jvm_class(spark, EXACTLY_ONCE).commitEmpty(spark._jsparkSession, path, int(batch_id))


def read_archive(spark: SparkSession, path: str) -> DataFrame:
    """Batch read of a folder written by :func:`write_batch` (committed files only)."""
    return spark.read.parquet(path)
