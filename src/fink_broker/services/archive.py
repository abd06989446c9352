"""archive: science Parquet -> HBase main table, index tables, cutouts and statistics.

A Spark file-source stream over ``science/<survey>/`` (checkpointed: each science file is
archived once) feeds a ``foreachBatch`` that builds the rows of every table on the JVM
(``engine.hbase_rows``), puts them from the Python workers (``engine.hbase_sink``),
refreshes the schema row of this broker version and writes the counts of each science
file into its night's statistics row. Row keys are deterministic (``<objectId>·<mjd>``...),
so a micro-batch replayed after a crash, or a night archived again with
``fink archive --night``, rewrites the same rows: the row counts and the statistics do not
change.
"""

from __future__ import annotations

import logging
import time

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

from fink_broker import __version__
from fink_broker.config import Settings
from fink_broker.engine.hbase_rows import IndexOptions, archive_rows
from fink_broker.engine.hbase_sink import write_rows
from fink_broker.engine.session import get_session
from fink_broker.engine.sink_state import set_aside
from fink_broker.engine.sources import read_archive, upstream_stream
from fink_broker.engine.triggers import trigger_kwargs
from fink_broker.infra.hbase_client import connect, drop_tables, ensure_tables
from fink_broker.infra.hbase_schema import StaleArchive, record_schema, stale_layout
from fink_broker.lake import Lake
from fink_broker.services.archive_statistics import file_counts
from fink_broker.services.distribution import selected_filters
from fink_broker.services.streaming import BatchMetrics, MetricsLog, await_with_graceful_stop
from fink_broker.surveys import SurveyAdapter, build_survey
from fink_broker.surveys.archive_shapes import archive_tables as survey_tables
from fink_broker.tables import statistics as S
from fink_broker.tables.layout import ArchiveTables, TableKind

log = logging.getLogger(__name__)

SERVICE = "archive"
#: how long a live archive waits for the science archive to appear (a night is ~12 h)
WAIT_FOR_ARCHIVE_S = 12 * 3600.0


def archive_tables(settings: Settings, survey: str) -> ArchiveTables:
    """The HBase tables of ``survey`` under the configured namespace."""
    return survey_tables(settings.hbase.namespace, survey)


def index_options(settings: Settings, survey: str) -> IndexOptions:
    """What the optional indexes take from the settings: cutouts, tags, anomaly threshold."""
    filters = tuple(selected_filters(settings, survey)) if settings.archive.tags else ()
    return IndexOptions(
        cutouts=settings.archive.cutouts,
        filters=filters,
        anomaly_threshold=settings.archive.anomaly_threshold,
    )


def create_tables(settings: Settings, survey: str) -> list[str]:
    """Create the survey's archive tables that are missing (``fink init --hbase``).

    Raises :class:`StaleArchive` when existing tables have an older layout: rows of the
    two layouts cannot share tables (``fink archive --rebuild``).
    """
    connection = connect(settings)
    try:
        tables = archive_tables(settings, survey)
        reason = stale_layout(connection, tables)
        if reason is not None:
            raise StaleArchive(reason)
        return ensure_tables(connection, tables.specs())
    finally:
        connection.close()


class ArchiveBatchWriter:
    """The ``foreachBatch`` body: build rows, put them, record the schema, log."""

    def __init__(
        self, settings: Settings, adapter: SurveyAdapter, *, replace_statistics: bool = False
    ) -> None:
        self.settings = settings
        self.adapter = adapter
        survey = self.survey = adapter.name
        self.tables = archive_tables(settings, survey)
        self.options = index_options(settings, survey)
        #: a whole-night run rewrites its nights' statistics rows instead of adding cells
        self.replace_statistics = replace_statistics
        self.metrics = MetricsLog(settings, SERVICE)
        created = create_tables(settings, survey)
        if created:
            log.info("archive: created tables %s", created)

    def __call__(
        self, batch: DataFrame, batch_id: int, source: str | None = None
    ) -> dict[str, int]:
        """Archive ``batch``; ``source`` names its statistics cell when its rows were read
        from no science file (``archive_statistics.file_counts``)."""
        start = time.monotonic()
        built = archive_rows(batch, self.adapter, self.tables, self.options)
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
                built.history_types,
            )
        finally:
            connection.close()
        written = write_rows(built.rows, self.settings.hbase)
        alerts = written.get(self.tables.name(TableKind.ALERTS), 0)
        counts = file_counts(batch, self.survey, source)
        rows_in = sum(c["alerts"] for c in counts.values())
        self._write_statistics(counts)
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

    def _write_statistics(self, counts: dict[tuple[str, str], S.Counts]) -> None:
        """One cell per (night, science file); a whole-night run replaces the night's row."""
        rows: dict[str, dict[bytes, bytes]] = {}
        for (night, cell), value in counts.items():
            if night is None:
                log.warning(
                    "%d alert(s) without night are archived but not counted", value["alerts"]
                )
                continue
            rows.setdefault(night, {})[cell.encode()] = S.encode(value)
        connection = connect(self.settings)
        try:
            table = connection.table(self.tables.name(TableKind.STATISTICS))
            for night, cells in rows.items():
                if self.replace_statistics:
                    table.delete(night.encode())
                table.put(night.encode(), cells)
        finally:
            connection.close()


def science_source(spark: SparkSession, settings: Settings, survey: str) -> DataFrame:
    """Streaming read of the survey's science archive; a live run waits for raw2science."""
    return upstream_stream(
        spark,
        Lake(settings.paths.root, survey).science,
        trigger=settings.archive.trigger,
        max_files_per_trigger=settings.archive.max_files_per_trigger,
        wait_live_s=WAIT_FOR_ARCHIVE_S,
    )


def start(
    settings: Settings,
    spark: SparkSession | None = None,
    survey: SurveyAdapter | None = None,
    *,
    reset_checkpoint: bool = False,
) -> StreamingQuery:
    """Start the archive query of ``survey`` (default: the configured one; non-blocking).

    ``reset_checkpoint`` sets the checkpoint aside: the science archive is read again, and
    the row keys make every row written again the same row.
    """
    spark = spark or get_session(settings, app_name=f"fink-{SERVICE}")
    adapter = survey or build_survey(settings)
    survey_name = adapter.name
    lake = Lake(settings.paths.root, survey_name)
    if reset_checkpoint:
        set_aside(spark, SERVICE, lake.checkpoint(SERVICE))
    writer = ArchiveBatchWriter(settings, adapter)
    survey = survey_name
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
    settings: Settings,
    night: str,
    spark: SparkSession | None = None,
    survey: SurveyAdapter | None = None,
) -> dict[str, int]:
    """Archive one past night of the science archive in one bounded batch run.

    Needs no checkpoint: the row keys make a second run rewrite the same rows. The night's
    statistics row is written anew from every file of the night (so a science archive
    rebuilt since leaves no stale counts). Returns the rows written per table.
    """
    spark = spark or get_session(settings, app_name=f"fink-{SERVICE}-night")
    adapter = survey or build_survey(settings)
    science = read_archive(spark, Lake(settings.paths.root, adapter.name).science)
    tonight = science.where(F.col("night") == night)
    return ArchiveBatchWriter(settings, adapter, replace_statistics=True)(tonight, -1)


def rebuild(
    settings: Settings, spark: SparkSession | None = None, survey: SurveyAdapter | None = None
) -> dict[str, dict[str, int]]:
    """Drop the survey's tables and archive every night of its science archive again.

    The migration path between layouts (``tables/layout.py``), and the way to rebuild an
    archive whose tables were lost: the science Parquet holds everything the tables do.
    Returns the rows written per table, per night.
    """
    spark = spark or get_session(settings, app_name=f"fink-{SERVICE}-rebuild")
    adapter = survey or build_survey(settings)
    survey = adapter.name
    science = read_archive(spark, Lake(settings.paths.root, survey).science)
    nights = sorted(str(r[0]) for r in science.select("night").distinct().collect())
    connection = connect(settings)
    try:
        dropped = drop_tables(connection, archive_tables(settings, survey).specs())
    finally:
        connection.close()
    log.info(
        "archive rebuild of %s: dropped %s; %d night(s) to archive", survey, dropped, len(nights)
    )
    return {night: archive_night(settings, night, spark, adapter) for night in nights}


def run(
    settings: Settings, survey: SurveyAdapter | None = None, *, reset_checkpoint: bool = False
) -> None:
    """Run the archive until the science archive is drained (availableNow) or SIGTERM."""
    await_with_graceful_stop(start(settings, survey=survey, reset_checkpoint=reset_checkpoint))
