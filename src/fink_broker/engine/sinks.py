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


def write_batch(
    spark: SparkSession, df: DataFrame, path: str, batch_id: int, partition_by: Sequence[str]
) -> None:
    """Write ``df`` as micro-batch ``batch_id`` of the Parquet folder ``path`` (idempotent)."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    columns = spark.sparkContext._gateway.new_array(jvm.java.lang.String, len(partition_by))
    for i, name in enumerate(partition_by):
        columns[i] = name
    jvm.org.fink.broker.ExactlyOnceParquet.addBatch(
        spark._jsparkSession, path, columns, int(batch_id), df._jdf
    )


def committed(spark: SparkSession, path: str, batch_id: int) -> bool:
    """Whether the folder ``path`` already committed micro-batch ``batch_id`` (a replay
    after a crash): :func:`write_batch` would then write nothing."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    return bool(
        jvm.org.fink.broker.ExactlyOnceParquet.committed(spark._jsparkSession, path, int(batch_id))
    )


def read_archive(spark: SparkSession, path: str) -> DataFrame:
    """Batch read of a folder written by :func:`write_batch` (committed files only)."""
    return spark.read.parquet(path)
