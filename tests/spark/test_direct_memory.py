"""Large Parquet reads do not leave direct memory behind.

Hadoop's local file system reads a Parquet row group's column chunks as one vectored
range, through an ``AsynchronousFileChannel`` into a heap buffer. The JDK copies each such
read through a temporary direct buffer of the range's size and, by default, keeps it in a
per-thread cache, for every thread of the channel's pool. Rubin archives have row groups of
~127 MB: ``benchmarks/raw2science.py`` ran out of direct memory in its third warm round over
20,000 Rubin alerts (``OutOfMemoryError: Cannot reserve 127259136 bytes of direct buffer
memory``), and its task then waited 300 s on the lost read before failing the query. Fink
reads local files plainly (``local_file_settings``).
"""

from __future__ import annotations

import os

from pyspark.sql import functions as F

#: bytes of the one binary value of the test file: a buffer kept for it would show
VALUE_BYTES = 48 * 2**20


def direct_bytes(spark) -> int:
    """Bytes of the JVM's direct buffers in use (temporary buffers in caches included)."""
    jvm = spark.sparkContext._jvm
    beans = jvm.java.lang.management.ManagementFactory.getPlatformMXBeans(
        jvm.java.lang.Class.forName("java.lang.management.BufferPoolMXBean")
    )
    return next(b.getMemoryUsed() for b in beans if b.getName() == "direct")


def test_parquet_reads_free_their_temporary_direct_buffers(spark, tmp_path):
    path = str(tmp_path / "big")
    # one incompressible value per file, written plainly: its row group is one ~48 MB range
    frame = spark.createDataFrame([(os.urandom(VALUE_BYTES),)], "stamp binary")
    frame.coalesce(1).write.option("compression", "none").parquet(path)
    before = direct_bytes(spark)
    for _ in range(4):
        row = spark.read.parquet(path).select(F.length("stamp").alias("n")).first()
        assert row["n"] == VALUE_BYTES
    assert direct_bytes(spark) - before < VALUE_BYTES
