"""The files of a file-source micro-batch, from its plan, against Spark's own listing."""

from __future__ import annotations

from pyspark.sql import functions as F

from fink_broker.engine.sinks import write_batch
from fink_broker.engine.sources import BatchFiles, archive_stream, file_paths


def make_archive(spark, path: str, n_batches: int) -> None:
    """An archive of ``n_batches`` committed micro-batches, each one file per night."""
    for batch_id in range(n_batches):
        rows = spark.range(batch_id * 100, (batch_id + 1) * 100, numPartitions=1).select(
            F.col("id"),
            F.lit(f"2026010{batch_id % 2 + 1}").alias("night"),
            F.sha2(F.col("id").cast("string"), 512).alias("filler"),
        )
        write_batch(spark, rows, path, batch_id, ["night"])


def test_planned_files_equal_the_rows_files(spark, tmp_path):
    """Every micro-batch: the plan's files (no Spark job) are those its rows come from,
    with their sizes, even when a file is read in several splits."""
    archive = str(tmp_path / "archive")
    make_archive(spark, archive, 5)
    stream = archive_stream(spark, archive, max_files_per_trigger=2)
    read = BatchFiles(spark, archive, stream.schema)
    seen: list[tuple[dict[str, int], dict[str, int], int]] = []

    def check(paths, batch_id: int) -> None:
        planned = read.files(paths)
        listed = {r["path"]: int(r["size"]) for r in paths.distinct().collect()}
        seen.append((planned, listed, read(planned).count()))

    before = spark.conf.get("spark.sql.files.maxPartitionBytes")
    # files of ~14 kB in 4 kB splits: each file is several partitions of the scan
    spark.conf.set("spark.sql.files.maxPartitionBytes", "4096")
    try:
        query = (
            file_paths(stream)
            .writeStream.foreachBatch(check)
            .option("checkpointLocation", str(tmp_path / "checkpoint"))
            .trigger(availableNow=True)
            .start()
        )
        query.awaitTermination()
    finally:
        spark.conf.set("spark.sql.files.maxPartitionBytes", before)
    assert [len(planned) for planned, _, _ in seen] == [2, 2, 1]
    for planned, listed, _ in seen:
        assert planned == listed
    assert sum(rows for _, _, rows in seen) == 500
    every = [p for planned, _, _ in seen for p in planned]
    assert len(set(every)) == 5


def test_files_of_a_frame_without_a_file_scan_are_listed_by_spark(spark):
    """A frame whose plan holds no file scan falls back to Spark's distinct listing."""
    frame = spark.createDataFrame(
        [("file:/a/part-0.parquet", 10), ("file:/a/part-0.parquet", 10), ("file:/b/x", 3)],
        "path string, size long",
    )
    read = BatchFiles(spark, "/a", frame.schema)
    assert read.files(frame) == {"file:/a/part-0.parquet": 10, "file:/b/x": 3}
