"""The positional zip of values computed on a second read back to their rows."""

from __future__ import annotations

import pytest
from py4j.protocol import Py4JJavaError
from pyspark.errors import IllegalArgumentException
from pyspark.sql import functions as F

from fink_broker.engine.positional_zip import zip_by_position

pytestmark = pytest.mark.spark

KEYS = ("kafka_partition", "kafka_offset")


def rows_frame(spark, n: int):
    """Rows with a Kafka-like key, a value, and a payload standing in for the cutouts."""
    return spark.range(n, numPartitions=5).select(
        (F.col("id") % 3).cast("int").alias("kafka_partition"),
        F.col("id").alias("kafka_offset"),
        (F.col("id") * 0.5).alias("x"),
        F.sha2(F.col("id").cast("string"), 512).cast("binary").alias("payload"),
    )


def flags():
    """Two cuts: x not a multiple of 3 (null for id 7), offset below 90; then both."""
    first = F.when(F.col("kafka_offset") == 7, F.lit(None)).otherwise(
        (F.col("kafka_offset") % 3) != 0
    )
    second = F.col("kafka_offset") < 90
    return [first.alias("a"), second.alias("b"), (first & second).alias("kept")]


def values_of(source, passes):
    """The values of the rows that pass: 2x, then the keys under other names."""
    return source.where(passes).select(
        (F.col("x") * 2).alias("y"), *[F.col(k).alias(f"v_{k}") for k in KEYS]
    )


def expected_ids(n: int) -> list[int]:
    return [i for i in range(n) if i != 7 and i % 3 != 0 and i < 90]


@pytest.mark.parametrize("source", ["parquet", "parquet_splits", "memory"])
def test_zip_pairs_each_kept_row_with_its_values_and_counts_cuts(spark, tmp_path, source):
    """A file scan is read as column batches, coalesced, even when its files are read in
    several splits (most of them empty: a split reads the row groups that start in it);
    any other source as rows."""
    n = 100
    frame = rows_frame(spark, n)
    before = spark.conf.get("spark.sql.files.maxPartitionBytes")
    if source.startswith("parquet"):
        frame.write.parquet(str(tmp_path / "rows"))
        if source == "parquet_splits":
            spark.conf.set("spark.sql.files.maxPartitionBytes", "1024")
        frame = spark.read.parquet(str(tmp_path / "rows"))
    splits = frame.rdd.getNumPartitions()
    try:
        frame = frame.coalesce(2) if source.startswith("parquet") else frame
        kept = flags()[-1]
        zipped = zip_by_position(frame, flags(), values_of(frame, kept), KEYS)
    finally:
        spark.conf.set("spark.sql.files.maxPartitionBytes", before)
    assert (splits > 5) == (source == "parquet_splits")
    assert zipped.columnar == source.startswith("parquet")
    assert zipped.frame.columns == [*frame.columns, "y"]
    got = sorted((r["kafka_offset"], r["x"], r["y"]) for r in zipped.frame.collect())
    assert got == [(i, i * 0.5, float(i)) for i in expected_ids(n)]
    # in, kept, removed by a (a null flag removes nothing), removed by b
    assert zipped.counts() == [n, len(expected_ids(n)), 34, 10]


def test_misaligned_values_fail_the_task_instead_of_mixing_rows(spark):
    frame = rows_frame(spark, 100)
    kept = flags()[-1]
    reordered = values_of(frame, kept).sortWithinPartitions(F.col("v_kafka_offset").desc())
    zipped = zip_by_position(frame, flags(), reordered, KEYS)
    with pytest.raises(Py4JJavaError, match="misaligned"):
        zipped.frame.collect()


@pytest.mark.parametrize(
    ("values", "error"),
    [
        ("one_missing", "misaligned"),
        ("one_extra", "misaligned"),
        ("missing_at_the_end", "no values row"),
        ("extra_at_the_end", "left over"),
    ],
)
def test_values_of_other_rows_fail_the_task(spark, values, error):
    """Values of a row that did not pass, or none for one that did, are never written:
    5 partitions of 20 rows, the last holding ids 80-99."""
    frame = rows_frame(spark, 100)
    kept = flags()[-1]
    offset = F.col("kafka_offset")
    passes = {
        "one_missing": kept & (offset != 50),
        "one_extra": kept | (offset == 51),
        "missing_at_the_end": kept & (offset < 80),
        "extra_at_the_end": kept | (offset >= 95),
    }[values]
    zipped = zip_by_position(frame, flags(), values_of(frame, passes), KEYS)
    with pytest.raises(Py4JJavaError, match=error):
        zipped.frame.collect()


def test_values_must_end_with_the_keys(spark):
    frame = rows_frame(spark, 10)
    values = frame.select((F.col("x") * 2).alias("y"), F.col("kafka_partition"))
    with pytest.raises(IllegalArgumentException, match="must end with the alert keys"):
        zip_by_position(frame, flags(), values, KEYS)
