"""Streaming reads of Fink's own Parquet archives (raw, science) with Spark's file source.

A downstream service may start before its upstream one has written anything (the nightly
scheduler starts them together); it then waits for the first committed micro-batch, because
a file-source stream needs the archive's schema to start.
"""

from __future__ import annotations

import logging
import time

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession

from fink_broker.engine.triggers import trigger_kwargs

log = logging.getLogger(__name__)


def archive_schema(spark: SparkSession, path: str, *, wait_s: float, poll_s: float = 5.0):
    """The schema of the archive at ``path``, waiting up to ``wait_s`` for its first batch."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return spark.read.parquet(path).schema
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
