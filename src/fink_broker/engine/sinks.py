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

from fink_broker.engine.session import java_strings, jvm_class

#: Fink's Java driver of Spark's streaming file sink (infra/java)
EXACTLY_ONCE = "org.fink.broker.ExactlyOnceParquet"


#: Parquet's path of a list's elements in Spark's (non-legacy) layout: ``name.list.element``
LIST_ELEMENT = "list.element"


def leaves(schema: T.StructType, prefix: str = "") -> list[tuple[str, T.DataType]]:
    """(Parquet column path, Spark type) of every leaf of ``schema``, through structs and
    lists (``prv_candidates.list.element.jd``); maps are not entered."""
    out: list[tuple[str, T.DataType]] = []
    for field in schema.fields:
        path, kind = f"{prefix}{field.name}", field.dataType
        while isinstance(kind, T.ArrayType):
            path, kind = f"{path}.{LIST_ELEMENT}", kind.elementType
        if isinstance(kind, T.StructType):
            out.extend(leaves(kind, f"{path}."))
        elif not isinstance(kind, T.MapType):
            out.append((path, kind))
    return out


#: Parquet writer settings per column path, by leaf type. Cutouts (binary): no dictionary
#: and no statistics, see :func:`parquet_options`. Floating-point values (positions,
#: fluxes, light-curve features) are almost all distinct: Parquet builds a dictionary of a
#: column chunk's first page anyway, then finds it no smaller than the plain values and
#: writes them again plainly. 20,000 rows of 120 double columns on local[2]: 0.28 s without
#: the dictionary, 0.58 s with it, files of the same size (``benchmarks/parquet_columns.py``).
COLUMN_OPTIONS: dict[type[T.DataType], dict[str, str]] = {
    T.BinaryType: {
        "parquet.enable.dictionary": "false",
        "parquet.column.statistics.enabled": "false",
        "parquet.size.statistics.enabled": "false",
    },
    T.DoubleType: {"parquet.enable.dictionary": "false"},
    T.FloatType: {"parquet.enable.dictionary": "false"},
}


def parquet_options(schema: T.StructType) -> dict[str, str]:
    """Writer options for a frame of alerts, per column path (``option#path``).

    Cutouts are gzipped FITS, unique per alert: Parquet still tries a dictionary for each
    binary column until the page overflows, hashing and comparing every stamp on the way
    (19% of stream2raw's executor time, JFR, 20,000 ZTF alerts), and keeps min/max
    statistics by comparing whole stamps byte by byte, for a filter nobody writes.
    Floating-point columns skip the dictionary too (``COLUMN_OPTIONS``).
    """
    return {
        f"{option}#{path}": value
        for path, kind in leaves(schema)
        for option, value in COLUMN_OPTIONS.get(type(kind), {}).items()
    }


def write_batch(
    spark: SparkSession, df: DataFrame, path: str, batch_id: int, partition_by: Sequence[str]
) -> None:
    """Write ``df`` as micro-batch ``batch_id`` of the Parquet folder ``path`` (idempotent)."""
    options = [text for pair in parquet_options(df.schema).items() for text in pair]
    jvm_class(spark, EXACTLY_ONCE).addBatch(
        spark._jsparkSession,
        path,
        java_strings(spark, list(partition_by)),
        int(batch_id),
        df._jdf,
        java_strings(spark, options),
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
