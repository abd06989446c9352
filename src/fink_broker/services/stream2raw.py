"""stream2raw: survey Kafka stream -> decoded alerts -> raw Parquet archive by night.

One Spark Kafka source feeds a ``foreachBatch`` that decodes every record once on the JVM,
writes good alerts to ``raw/night=YYYYMMDD/`` and undecodable messages to
``quarantine/night=YYYYMMDD/``, both exactly once (``engine.sinks``), and logs one line per
micro-batch. The checkpoint holds the Kafka offsets, so a restart after any kill neither
loses nor duplicates an alert.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, Observation, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

from fink_broker.config import Settings
from fink_broker.engine.decode import archive_columns, decode, quarantine_columns
from fink_broker.engine.kafka_options import spark_kafka_options
from fink_broker.engine.session import get_session
from fink_broker.engine.sink_state import Resume, check, drop_archived, sink_batch
from fink_broker.engine.sinks import commit_empty, committed, write_batch
from fink_broker.engine.triggers import trigger_kwargs
from fink_broker.lake import Lake
from fink_broker.services.streaming import (
    BatchMetrics,
    MetricsLog,
    await_with_graceful_stop,
    input_topic,
)
from fink_broker.surveys import build_survey
from fink_broker.surveys.base import SurveyAdapter

log = logging.getLogger(__name__)

SERVICE = "stream2raw"

#: Kafka fetch sizes for alerts of 50-150 kB. The client's default (1 MiB per partition)
#: brings a dozen alerts per round trip and the source crawls at ~30 MB/s. Larger is not
#: better either: each cached consumer keeps its last fetch, which survives young GCs and
#: is copied into the old generation; 20,000 Rubin alerts, warm drains on local[2]:
#: 16 MiB per partition 1,657-1,687 alerts/s, 4 MiB 1,825/s, 2 MiB 1,715/s.
FETCH_OPTIONS = {
    "kafka.max.partition.fetch.bytes": str(4 * 2**20),
    "kafka.fetch.max.bytes": str(16 * 2**20),
    "kafka.receive.buffer.bytes": str(4 * 2**20),
}


def reason() -> Column:
    """The quarantine reason counted in logs and metrics: the error without its details
    (``unknown schema X (accepted: ...)`` counts as ``unknown schema X``)."""
    return F.substring_index("error", " (", 1)


def kafka_source(
    spark: SparkSession, settings: Settings, topic: str, *, streaming: bool = True
) -> DataFrame:
    """Spark's Kafka source on ``topic`` (streaming, or a bounded batch read for tests)."""
    reader = spark.readStream if streaming else spark.read
    reader = reader.format("kafka").options(**spark_kafka_options(settings.kafka))
    reader = reader.option("subscribe", topic).option(
        "startingOffsets", settings.stream2raw.starting_offsets
    )
    reader = reader.options(**FETCH_OPTIONS, **settings.kafka.consumer)
    if streaming:
        reader = reader.option("maxOffsetsPerTrigger", settings.stream2raw.max_offsets_per_trigger)
    return reader.load()


class RawBatchWriter:
    """The ``foreachBatch`` body: decode once, write archive and quarantine, log, count."""

    def __init__(
        self,
        spark: SparkSession,
        settings: Settings,
        adapter: SurveyAdapter,
        resume: Resume | None = None,
    ) -> None:
        self.spark = spark
        self.adapter = adapter
        self.lake = Lake(settings.paths.root, adapter.name)
        #: where the checkpoint's batch ids start in the archives (after a reset)
        self.resume = resume or Resume()
        self.metrics = MetricsLog(settings, SERVICE)
        #: tasks per micro-batch: one per core. Spark's Kafka source makes one per topic
        #: partition; each task pays a fixed cost (generated code for the alert schema, a
        #: Parquet writer of ~200 columns) and writes a file, so fewer, fuller tasks
        #: (two per batch on local[2] instead of four) are cheaper and leave fewer files.
        self.tasks = spark.sparkContext.defaultParallelism
        self.max_bytes = settings.stream2raw.max_decoded_mb * 2**20

    def __call__(self, batch: DataFrame, query_batch_id: int) -> None:
        start = time.monotonic()
        batch_id = sink_batch(self.resume, query_batch_id)
        duplicates = 0
        if committed(self.spark, self.lake.raw, batch_id):
            archived, reasons = self._replayed(batch, batch_id)
        else:
            archived, reasons, duplicates = self._one_pass(batch, batch_id)
        self.log_batch(batch_id, archived, reasons, duplicates, start)

    def write_decoded(self, decoded: DataFrame, batch_id: int) -> DataFrame:
        """Archive a decoded batch that its caller has cached and reads again (the one-pass
        pipeline): the alerts written, and the quarantine. Returns the alerts as the raw
        archive holds them, the same rows and ingest times.

        A batch the raw archive committed before a crash is not written again; its alerts
        are still returned, for the stages that did not commit it.
        """
        start = time.monotonic()
        archived, reasons = decoded_counts(decoded)
        alerts = archive_columns(decoded, self.adapter, self.max_bytes)
        duplicates = 0
        if not committed(self.spark, self.lake.raw, batch_id):
            rows, kept = self._without_archived(alerts, batch_id)
            write_batch(self.spark, rows, self.lake.raw, batch_id, ["night"])
            if kept is not None:
                duplicates = archived - int(kept.get["rows"])
                archived -= duplicates
        if reasons:
            write_batch(
                self.spark, quarantine_columns(decoded), self.lake.quarantine, batch_id, ["night"]
            )
        else:
            commit_empty(self.spark, self.lake.quarantine, batch_id)
        self.log_batch(batch_id, archived, reasons, duplicates, start)
        return alerts

    def log_batch(
        self, batch_id: int, archived: int, reasons: Counter[str], duplicates: int, start: float
    ) -> None:
        """The batch's metrics line and log lines."""
        metrics = BatchMetrics(
            service=SERVICE,
            batch_id=batch_id,
            rows_in=archived + sum(reasons.values()),
            rows_out=archived,
            quarantined=sum(reasons.values()),
            duration_s=round(time.monotonic() - start, 3),
            detail={
                "quarantine_reasons": dict(reasons),
                "survey": self.adapter.name,
                "duplicates": duplicates,
            },
        )
        self.metrics.append(metrics)
        log.info(
            "batch=%d rows_in=%d archived=%d quarantined=%d duration=%.2fs%s",
            batch_id,
            metrics.rows_in,
            archived,
            metrics.quarantined,
            metrics.duration_s,
            (f" reasons={dict(reasons)}" if reasons else "")
            + (f" already_archived={duplicates}" if duplicates else ""),
        )
        for reason, n in reasons.items():
            log.warning("quarantined %d message(s) in batch %d: %s", n, batch_id, reason)

    def _one_pass(self, batch: DataFrame, batch_id: int) -> tuple[int, Counter[str], int]:
        """Decode and archive in one pass over the Kafka batch, counting on the way:
        (archived, quarantined by reason, alerts dropped as already archived).

        The raw write observes every decoded message (count, and partition, offset and
        reason of the undecodable ones), so the alerts are read from Kafka, decoded and
        written once; caching the decoded batch instead cost more than that whole pass
        (5,000 ZTF alerts: 4-6 s to cache and count, 2 s to write). Only when messages
        failed is the batch read again, for their bytes, filtered to their offsets.
        """
        observation = Observation(f"stream2raw_{batch_id}_{uuid.uuid4().hex}")
        decoded = decode(batch.coalesce(self.tasks), self.adapter, self.max_bytes)
        bad = F.when(
            F.col("error").isNotNull(),
            F.struct(
                F.col("kafka_partition").alias("partition"),
                F.col("kafka_offset").alias("offset"),
                reason().alias("reason"),
            ),
        )
        watched = decoded.observe(
            observation, F.count(F.lit(1)).alias("messages"), F.collect_list(bad).alias("bad")
        )
        rows, kept = self._without_archived(
            archive_columns(watched, self.adapter, self.max_bytes), batch_id
        )
        write_batch(self.spark, rows, self.lake.raw, batch_id, ["night"])
        seen = observation.get
        failed = seen["bad"]
        if failed:
            where = {f"{r['partition']}:{r['offset']}" for r in failed}
            offsets = F.concat_ws(":", F.col("partition"), F.col("offset"))
            rejected = decode(
                batch.where(offsets.isin(sorted(where))), self.adapter, self.max_bytes
            )
            write_batch(
                self.spark, quarantine_columns(rejected), self.lake.quarantine, batch_id, ["night"]
            )
        else:  # the log needs every batch id (its compaction batches merge the ten before)
            commit_empty(self.spark, self.lake.quarantine, batch_id)
        decoded_ok = int(seen["messages"]) - len(failed)
        archived = decoded_ok if kept is None else int(kept.get["rows"])
        return archived, Counter(r["reason"] for r in failed), decoded_ok - archived

    def _replayed(self, batch: DataFrame, batch_id: int) -> tuple[int, Counter[str]]:
        """A batch the raw archive committed before a crash: its write is skipped (nothing
        to observe), so the counts come from a decode of their own, and the quarantine is
        written unless it committed too."""
        decoded = decode(batch, self.adapter, self.max_bytes).persist(StorageLevel.MEMORY_AND_DISK)
        try:
            counts = decoded_counts(decoded)
            write_batch(
                self.spark, quarantine_columns(decoded), self.lake.quarantine, batch_id, ["night"]
            )
        finally:
            decoded.unpersist()
        return counts

    def _without_archived(
        self, rows: DataFrame, batch_id: int
    ) -> tuple[DataFrame, Observation | None]:
        """``rows`` less the alerts the archive already holds, after --reset-checkpoint
        (with the observation that counts what is left); else ``rows`` as they are."""
        if not self.resume.nights:
            return rows, None
        kept = Observation(f"stream2raw_kept_{batch_id}_{uuid.uuid4().hex}")
        rows = drop_archived(self.spark, rows, self.lake.raw, self.resume, self.adapter.alert_id)
        return rows.observe(kept, F.count(F.lit(1)).alias("rows")), kept


def decoded_counts(decoded: DataFrame) -> tuple[int, Counter[str]]:
    """(decoded alerts, undecodable messages by reason) of a decoded batch, in one
    aggregation: cheap on a cached batch, of which it reads the ``error`` column alone."""
    counts = {
        (row["ok"], row["error"]): row["n"]
        for row in decoded.groupBy(
            F.col("error").isNull().alias("ok"),
            F.when(F.col("error").isNotNull(), reason()).alias("error"),
        )
        .agg(F.count(F.lit(1)).alias("n"))
        .collect()
    }
    archived = sum(n for (ok, _), n in counts.items() if ok)
    return archived, Counter({err: n for (ok, err), n in counts.items() if not ok})


def start(
    settings: Settings,
    spark: SparkSession | None = None,
    survey: SurveyAdapter | None = None,
    *,
    reset_checkpoint: bool = False,
) -> StreamingQuery:
    """Start the stream2raw query (non-blocking) for ``survey`` (default: the configured one).

    It refuses to start when the checkpoint is behind the archive (``engine.sink_state``);
    ``reset_checkpoint`` starts a new checkpoint that continues the archive instead.
    """
    spark = spark or get_session(settings, app_name=f"fink-{SERVICE}")
    adapter = survey or build_survey(settings)
    topic = input_topic(settings, adapter)
    lake = Lake(settings.paths.root, adapter.name)
    resume = check(
        spark,
        SERVICE,
        lake.checkpoint(SERVICE),
        [lake.raw, lake.quarantine],
        reset_checkpoint=reset_checkpoint,
    )
    log.info(
        "stream2raw: %s topic %s on %s -> %s (trigger %s)",
        adapter.name,
        topic,
        settings.kafka.bootstrap_servers,
        lake.raw,
        settings.stream2raw.trigger,
    )
    return (
        kafka_source(spark, settings, topic)
        .writeStream.queryName(f"{SERVICE}_{adapter.name}")
        .foreachBatch(RawBatchWriter(spark, settings, adapter, resume))
        .option("checkpointLocation", lake.checkpoint(SERVICE))
        .trigger(**trigger_kwargs(settings.stream2raw.trigger))
        .start()
    )


def run(
    settings: Settings, survey: SurveyAdapter | None = None, *, reset_checkpoint: bool = False
) -> None:
    """Run stream2raw until the topic is drained (availableNow) or until SIGTERM."""
    query = start(settings, survey=survey, reset_checkpoint=reset_checkpoint)
    await_with_graceful_stop(query)
