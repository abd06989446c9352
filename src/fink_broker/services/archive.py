"""archive: science Parquet -> HBase main table, index tables and cutouts.

A Spark file-source stream over ``science/<survey>/`` (checkpointed: each science file is
archived once) feeds a ``foreachBatch`` that builds the rows of every table on the JVM
(``engine.hbase_rows``), puts them from the Python workers (``engine.hbase_sink``) and
refreshes the schema row of this broker version. Row keys are deterministic
(``<objectId>_<mjd>``...), so a micro-batch replayed after a crash, or a night archived
again with ``fink archive --night``, rewrites the same rows: the row counts do not change.
"""

from __future__ import annotations

import logging
import time

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

from fink_broker import __version__
from fink_broker.config import Settings
from fink_broker.engine.hbase_rows import archive_rows
from fink_broker.engine.hbase_sink import write_rows
from fink_broker.engine.session import get_session
from fink_broker.engine.sources import upstream_stream
from fink_broker.engine.triggers import trigger_kwargs
from fink_broker.infra.hbase_client import connect, ensure_tables
from fink_broker.infra.hbase_schema import record_schema
from fink_broker.lake import Lake
from fink_broker.services.streaming import BatchMetrics, MetricsLog, await_with_graceful_stop
from fink_broker.tables.layout import ArchiveTables, TableKind

log = logging.getLogger(__name__)

SERVICE = "archive"
#: how long a live archive waits for the science archive to appear (a night is ~12 h)
WAIT_FOR_ARCHIVE_S = 12 * 3600.0


def archive_tables(settings: Settings, survey: str) -> ArchiveTables:
    """The HBase tables of ``survey`` under the configured namespace."""
    return ArchiveTables(settings.hbase.namespace, survey)


def create_tables(settings: Settings, survey: str) -> list[str]:
    """Create the survey's archive tables that are missing (``fink init --hbase``)."""
    connection = connect(settings)
    try:
        return ensure_tables(connection, archive_tables(settings, survey).specs())
    finally:
        connection.close()


class ArchiveBatchWriter:
    """The ``foreachBatch`` body: build rows, put them, record the schema, log."""

    def __init__(self, settings: Settings, survey: str) -> None:
        self.settings = settings
        self.survey = survey
        self.tables = archive_tables(settings, survey)
        self.metrics = MetricsLog(settings, SERVICE)
        created = create_tables(settings, survey)
        if created:
            log.info("archive: created tables %s", created)

    def __call__(self, batch: DataFrame, batch_id: int) -> dict[str, int]:
        start = time.monotonic()
        built = archive_rows(batch, self.survey, self.tables, cutouts=self.settings.archive.cutouts)
        # the schema row first: a reader must be able to decode any row it finds
        connection = connect(self.settings)
        try:
            record_schema(
                connection,
                self.tables,
                built.schema_key,
                __version__,
                built.main_types,
                built.record_schemas,
            )
        finally:
            connection.close()
        written = write_rows(built.rows, self.settings.hbase)
        alerts = written.get(self.tables.name(TableKind.ALERTS), 0)
        rows_in = batch.count()
        short = {name.removeprefix(f"{self.tables.namespace}_"): n for name, n in written.items()}
        metrics = BatchMetrics(
            service=SERVICE,
            batch_id=batch_id,
            rows_in=rows_in,
            rows_out=alerts,
            duration_s=round(time.monotonic() - start, 3),
            detail={"tables": short, "survey": self.survey},
        )
        self.metrics.append(metrics)
        log.info(
            "batch=%d alerts_in=%d alerts_archived=%d rows=%s duration=%.2fs",
            batch_id,
            rows_in,
            alerts,
            short,
            metrics.duration_s,
        )
        if alerts != rows_in:
            log.warning(
                "batch=%d: %d alert(s) without object id or time were not archived",
                batch_id,
                rows_in - alerts,
            )
        return written


def science_source(spark: SparkSession, settings: Settings, survey: str) -> DataFrame:
    """Streaming read of the survey's science archive; a live run waits for raw2science."""
    return upstream_stream(
        spark,
        Lake(settings.paths.root, survey).science,
        trigger=settings.archive.trigger,
        max_files_per_trigger=settings.archive.max_files_per_trigger,
        wait_live_s=WAIT_FOR_ARCHIVE_S,
    )


def start(settings: Settings, spark: SparkSession | None = None) -> StreamingQuery:
    """Start the archive query of the configured survey (non-blocking)."""
    spark = spark or get_session(settings, app_name=f"fink-{SERVICE}")
    survey = settings.stream2raw.survey
    lake = Lake(settings.paths.root, survey)
    writer = ArchiveBatchWriter(settings, survey)
    log.info(
        "archive: %s %s -> HBase %s:%d tables %s_%s_* (trigger %s)",
        survey,
        lake.science,
        settings.hbase.thrift_host,
        settings.hbase.thrift_port,
        settings.hbase.namespace,
        survey,
        settings.archive.trigger,
    )
    return (
        science_source(spark, settings, survey)
        .writeStream.queryName(f"{SERVICE}_{survey}")
        .foreachBatch(writer)
        .option("checkpointLocation", lake.checkpoint(SERVICE))
        .trigger(**trigger_kwargs(settings.archive.trigger))
        .start()
    )


def archive_night(
    settings: Settings, night: str, spark: SparkSession | None = None
) -> dict[str, int]:
    """Archive one past night of the science archive in one bounded batch run.

    Needs no checkpoint: the row keys make a second run rewrite the same rows. Returns the
    rows written per table.
    """
    spark = spark or get_session(settings, app_name=f"fink-{SERVICE}-night")
    survey = settings.stream2raw.survey
    science = spark.read.parquet(Lake(settings.paths.root, survey).science)
    tonight = science.where(F.col("night") == night)
    return ArchiveBatchWriter(settings, survey)(tonight, -1)


def run(settings: Settings) -> None:
    """Run the archive until the science archive is drained (availableNow) or SIGTERM."""
    await_with_graceful_stop(start(settings))
