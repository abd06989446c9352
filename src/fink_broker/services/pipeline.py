"""pipeline: stream2raw -> raw2science -> distribution (-> archive) in one micro-batch.

The four services each run a Spark application of their own and hand alerts over through
Parquet: a Rubin alert was decoded once, but compressed and written twice with its cutouts
(raw, science) and read back twice (raw2science, distribution), and each hand-over waited
for the next service's trigger. On a laptop that is most of the latency of a live night.

``fink start pipeline`` runs one query on the Kafka stream instead. Its ``foreachBatch``
decodes the batch once into a cached frame, then runs the services' own batch writers on
it, in order: the raw archive and quarantine (``stream2raw.RawBatchWriter``), the cuts and
modules and the science archive (``raw2science.ScienceBatchWriter``, whose rows are cached
in turn), the filter topics (``distribution.DistributionBatchWriter``) and, with
``archive.in_pipeline``, the HBase tables (``archive.ArchiveBatchWriter``). Nothing is
read back from Parquet.

Exactly-once per archive holds as in the separate services: one checkpoint (the Kafka
offsets), and each Parquet sink commits by batch id, so a batch replayed after a crash
rewrites nothing already committed. Topics are published at-least-once, HBase rows are
rewritten with the same keys.

Each stage logs its metrics line under its own service name (the dashboard and `fink
show` read them as usual); ``pipeline.jsonl`` adds one line per batch with the wall time
of each stage.
"""

from __future__ import annotations

import logging
import time

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming import StreamingQuery

from fink_broker.config import Settings
from fink_broker.engine.archived_shape import as_read_back
from fink_broker.engine.decode import INGEST_TIME, decode
from fink_broker.engine.session import get_session, now
from fink_broker.engine.sink_state import Resume, check, sink_batch
from fink_broker.engine.triggers import trigger_kwargs
from fink_broker.lake import Lake
from fink_broker.services import archive, distribution, raw2science, stream2raw
from fink_broker.services.streaming import (
    BatchMetrics,
    MetricsLog,
    await_with_graceful_stop,
    input_topic,
)
from fink_broker.surveys import SurveyAdapter, build_survey

log = logging.getLogger(__name__)

SERVICE = "pipeline"
#: the Parquet sinks the checkpoint's batch ids index
PARQUET_SINKS = ("raw", "quarantine", "science")


def statistics_source(batch_id: int) -> str:
    """The statistics cell of one micro-batch's alerts (read from memory, not a file)."""
    return f"pipeline-batch-{batch_id}"


class PipelineBatchWriter:
    """The ``foreachBatch`` body: decode once, then each service's writer in turn."""

    def __init__(
        self,
        spark: SparkSession,
        settings: Settings,
        adapter: SurveyAdapter,
        resume: Resume | None = None,
    ) -> None:
        self.spark = spark
        self.adapter = adapter
        self.resume = resume or Resume()
        self.raw = stream2raw.RawBatchWriter(spark, settings, adapter, self.resume)
        self.science = raw2science.ScienceBatchWriter(spark, settings, adapter, self.resume)
        self.distribution = distribution.DistributionBatchWriter(spark, settings, adapter)
        if not self.distribution.filters:
            raise ValueError(f"no filter installed for {adapter.name}")
        self.archive = (
            archive.ArchiveBatchWriter(settings, adapter) if settings.archive.in_pipeline else None
        )
        self.metrics = MetricsLog(settings, SERVICE)

    @property
    def failure(self) -> Exception | None:
        """The operator-facing error that failed a batch (refused Kafka credentials)."""
        return self.distribution.failure

    def __call__(self, batch: DataFrame, query_batch_id: int) -> None:
        start = time.monotonic()
        batch_id = sink_batch(self.resume, query_batch_id)
        stages: dict[str, float] = {}
        # the ingest time is stamped once, in the cache: raw and science rows carry the same
        decoded = (
            decode(batch.coalesce(self.raw.tasks), self.adapter, self.raw.max_bytes)
            .withColumn(INGEST_TIME, now())
            .persist(StorageLevel.MEMORY_AND_DISK)
        )
        science: DataFrame | None = None
        try:
            mark = time.monotonic()
            alerts = self.raw.write_decoded(decoded, batch_id)
            stages[stream2raw.SERVICE] = time.monotonic() - mark
            mark = time.monotonic()
            science = self.science.process(as_read_back(alerts), query_batch_id, keep=True)
            stages[raw2science.SERVICE] = time.monotonic() - mark
            assert science is not None
            # the filters and HBase see the science rows as the separate services read them
            # from the science archive: the same columns in the same order and types
            published = as_read_back(science)
            mark = time.monotonic()
            self.distribution(published, batch_id)
            stages[distribution.SERVICE] = time.monotonic() - mark
            if self.archive is not None:
                mark = time.monotonic()
                self.archive(published, batch_id, statistics_source(batch_id))
                stages[archive.SERVICE] = time.monotonic() - mark
        finally:
            if science is not None:
                science.unpersist()
            decoded.unpersist()
        raw, science_line = self.raw.metrics.last, self.science.metrics.last
        published = self.distribution.metrics.last
        assert raw is not None and science_line is not None and published is not None
        metrics = BatchMetrics(
            service=SERVICE,
            batch_id=batch_id,
            rows_in=raw.rows_in,
            rows_out=published.rows_out,
            quarantined=raw.quarantined,
            duration_s=round(time.monotonic() - start, 3),
            detail={
                "survey": self.adapter.name,
                "archived": raw.rows_out,
                "science": science_line.rows_out,
                "stages_s": {name: round(s, 3) for name, s in stages.items()},
            },
        )
        self.metrics.append(metrics)
        log.info(
            "batch=%d messages_in=%d archived=%d science=%d published=%d duration=%.2fs stages=%s",
            batch_id,
            raw.rows_in,
            raw.rows_out,
            science_line.rows_out,
            published.rows_out,
            metrics.duration_s,
            metrics.detail["stages_s"],
        )


def start_with_writer(
    settings: Settings,
    spark: SparkSession | None = None,
    survey: SurveyAdapter | None = None,
    *,
    reset_checkpoint: bool = False,
) -> tuple[StreamingQuery, PipelineBatchWriter]:
    """The pipeline query (non-blocking) and its batch writer."""
    spark = spark or get_session(settings, app_name=f"fink-{SERVICE}")
    adapter = survey or build_survey(settings)
    topic = input_topic(settings, adapter)
    lake = Lake(settings.paths.root, adapter.name)
    resume = check(
        spark,
        SERVICE,
        lake.checkpoint(SERVICE),
        [getattr(lake, sink) for sink in PARQUET_SINKS],
        reset_checkpoint=reset_checkpoint,
    )
    writer = PipelineBatchWriter(spark, settings, adapter, resume)
    log.info(
        "pipeline: %s topic %s on %s -> %s, %s, topics %s%s (trigger %s)",
        adapter.name,
        topic,
        settings.kafka.bootstrap_servers,
        lake.raw,
        lake.science,
        writer.distribution.topics,
        ", HBase" if writer.archive is not None else "",
        settings.stream2raw.trigger,
    )
    query = (
        stream2raw.kafka_source(spark, settings, topic)
        .writeStream.queryName(f"{SERVICE}_{adapter.name}")
        .foreachBatch(writer)
        .option("checkpointLocation", lake.checkpoint(SERVICE))
        .trigger(**trigger_kwargs(settings.stream2raw.trigger))
        .start()
    )
    return query, writer


def start(
    settings: Settings,
    spark: SparkSession | None = None,
    survey: SurveyAdapter | None = None,
    *,
    reset_checkpoint: bool = False,
) -> StreamingQuery:
    """Start the one-pass pipeline of ``survey`` (default: the configured one; non-blocking).

    It refuses to start when its checkpoint is behind the Parquet archives
    (``engine.sink_state``), as stream2raw does; ``reset_checkpoint`` starts a new one.
    """
    return start_with_writer(settings, spark, survey, reset_checkpoint=reset_checkpoint)[0]


def run(
    settings: Settings, survey: SurveyAdapter | None = None, *, reset_checkpoint: bool = False
) -> None:
    """Run the pipeline until the topic is drained (availableNow) or until SIGTERM."""
    query, writer = start_with_writer(settings, survey=survey, reset_checkpoint=reset_checkpoint)
    try:
        await_with_graceful_stop(query)
    except Exception:
        if writer.failure is not None:
            raise writer.failure from None
        raise
