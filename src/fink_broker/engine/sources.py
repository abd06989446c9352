"""Streaming reads of Fink's own Parquet archives (raw, science) with Spark's file source.

A downstream service may start before its upstream one has written anything (the nightly
scheduler starts them together); it then waits for the first committed micro-batch, because
a file-source stream needs the archive's schema to start.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from fink_broker.engine.session import jvm_class
from fink_broker.engine.triggers import trigger_kwargs

log = logging.getLogger(__name__)


def read_archive(spark: SparkSession, path: str) -> DataFrame:
    """A batch read of a whole archive, with the union of its files' columns.

    An archive spans schema versions: when the operator moves a survey's reader schema to a
    newer version, the files written since have more columns than the older ones. Spark
    would otherwise take one file's schema for all (and lose the columns of the others);
    merged, the columns a file lacks read as null. Merging reads every file's footer, once
    per read: a service pays it when its stream starts, not per micro-batch.
    """
    return spark.read.option("mergeSchema", "true").parquet(path)


def archive_schema(spark: SparkSession, path: str, *, wait_s: float, poll_s: float = 5.0):
    """The schema of the archive at ``path`` (every file's columns, :func:`read_archive`),
    waiting up to ``wait_s`` for its first batch."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return read_archive(spark, path).schema
        except AnalysisException as err:  # absent, or no committed file yet
            if time.monotonic() >= deadline:
                raise FileNotFoundError(f"no archive at {path} after {wait_s:.0f} s") from err
            log.info("waiting for the archive %s to receive its first alerts", path)
            time.sleep(poll_s)
            poll_s = min(poll_s * 1.5, 60.0)


def archive_stream(
    spark: SparkSession, path: str, *, max_files_per_trigger: int, wait_s: float = 0.0
) -> DataFrame:
    """A file-source stream over an archive written by Fink (its ``_spark_metadata`` log)."""
    schema = archive_schema(spark, path, wait_s=wait_s)
    return (
        spark.readStream.schema(schema)
        .option("maxFilesPerTrigger", max_files_per_trigger)
        .parquet(path)
    )


def upstream_stream(
    spark: SparkSession,
    path: str,
    *,
    trigger: str,
    max_files_per_trigger: int,
    wait_live_s: float,
) -> DataFrame:
    """The stream a service reads from its upstream archive, under its trigger.

    A live run (processing-time trigger) waits up to ``wait_live_s`` for the upstream's
    first batch; a bounded run (``availableNow``) needs the archive to exist already.
    """
    bounded = "availableNow" in trigger_kwargs(trigger)
    return archive_stream(
        spark,
        path,
        max_files_per_trigger=max_files_per_trigger,
        wait_s=0.0 if bounded else wait_live_s,
    )


def file_paths(stream: DataFrame) -> DataFrame:
    """The micro-batches of a file-source stream as the paths and sizes of the files they
    hold (one row per alert, from Spark's hidden ``_metadata`` column: no alert column is
    read)."""
    return stream.select(
        F.col("_metadata.file_path").alias("path"), F.col("_metadata.file_size").alias("size")
    )


@dataclass(frozen=True)
class BatchFiles:
    """Reads the files of a :func:`file_paths` micro-batch as a file scan.

    ``foreachBatch`` hands a micro-batch over as rows already read (an RDD scan): each use
    of it reads its files again with every column, and Spark can neither prune columns
    nor push a filter into that read. raw2science reads its alerts twice (the alerts,
    and the module inputs alone): from the handed-over batch, the second read of 20,000
    Rubin alerts cost 4 s, cutouts included. A checkpointed stream replays a batch with
    the same files, so a restart reads the same alerts.
    """

    spark: SparkSession
    #: the archive's root, for partition discovery (``night``)
    base: str
    schema: T.StructType

    def files(self, paths: DataFrame) -> dict[str, int]:
        """Path -> size in bytes of each file of a :func:`file_paths` micro-batch.

        Read from the file scan in the micro-batch's plan (``MicroBatchFiles``, infra/java),
        without a Spark job; only a plan without a file scan costs a distinct over the rows.
        """
        planned = jvm_class(self.spark, "org.fink.broker.MicroBatchFiles").of(paths._jdf)
        if planned is not None:
            return {str(path): int(size) for path, size in planned.items()}
        log.warning("no file scan in the micro-batch plan: listing its files with a Spark job")
        return {row["path"]: int(row["size"]) for row in paths.distinct().collect()}

    def __call__(self, files: Iterable[str]) -> DataFrame:
        """The alerts of ``files``, read as a file scan."""
        ordered = sorted(files)
        if not ordered:
            return self.spark.createDataFrame([], self.schema)
        reader = self.spark.read.schema(self.schema).option("basePath", self.base)
        return reader.parquet(*ordered)
