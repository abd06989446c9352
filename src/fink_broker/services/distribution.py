"""distribution: science Parquet -> filters -> one Kafka topic per filter.

A Spark file-source stream over ``science/<survey>/`` (checkpointed) feeds a ``foreachBatch``
that evaluates every enabled filter in one Arrow UDF, explodes each alert into one row per
matching filter, serialises it in Fink's outgoing format (``engine.outgoing``: key = Avro
writer schema, value = schemaless Avro) and writes all topics through a ``topic`` column.

Delivery is at-least-once: a micro-batch replayed after a crash is published again, so a
consumer may see an alert twice; the alert id (``candid`` / ``diaSourceId``) is in every
record for de-duplication.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
from pyspark.sql import Column, DataFrame, Observation, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

from fink_broker.config import Settings
from fink_broker.engine.built_columns import BuiltColumns
from fink_broker.engine.filters import (
    failure_counts,
    filter_input_columns,
    filter_inputs,
    topics_column,
    verdicts_column,
)
from fink_broker.engine.kafka_options import refused_login, spark_producer_options
from fink_broker.engine.outgoing import key_value, published_columns
from fink_broker.engine.session import get_session
from fink_broker.engine.sink_state import set_aside
from fink_broker.engine.sources import read_archive, upstream_stream
from fink_broker.engine.triggers import trigger_kwargs
from fink_broker.errors import FinkError
from fink_broker.kafka_clients import (
    KafkaAuthError,
    TopicsRefused,
    ensure_topics,
    outgoing_kafka,
)
from fink_broker.lake import Lake
from fink_broker.plugins.filters import (
    AlertFilter,
    discover_filters,
    enabled_filters,
    filters_for,
    topic_name,
)
from fink_broker.services.streaming import BatchMetrics, MetricsLog, await_with_graceful_stop
from fink_broker.surveys import SurveyAdapter, as_adapter, build_survey

log = logging.getLogger(__name__)

SERVICE = "distribution"
#: how long a live distribution waits for the science archive to appear (a night is ~12 h)
WAIT_FOR_ARCHIVE_S = 12 * 3600.0


def selected_filters(settings: Settings, survey: str) -> list[AlertFilter]:
    """Enabled filters for the survey (``distribution.filters``, or all installed)."""
    return enabled_filters(survey, settings.distribution.filters)


@dataclass(frozen=True)
class _Routing:
    """The routing expressions of one schema: the filters' verdicts, topics per alert
    (from the verdicts column), message key and value, which read the ``stage`` columns
    added to the science alerts first."""

    stage: list[Column]
    verdicts: Column
    topics: Column
    key: Column
    value: Column


#: the column that holds the filters' verdict struct while an alert is routed
VERDICTS = "_fink_verdicts"


#: routings by (schema, survey, filters, prefix, cutouts); a stream sees one schema
_ROUTINGS = BuiltColumns[_Routing]()


def _routing(
    spark: SparkSession,
    science: DataFrame,
    survey: SurveyAdapter,
    filters: Sequence[AlertFilter],
    prefix: str,
    cutouts: bool,
    policy: str,
) -> _Routing:
    """Built once per schema: the expressions cost ~1 s of py4j calls (measured), which
    a micro-batch of a live stream should not pay again."""

    def build() -> _Routing:
        topics = [topic_name(f, survey.topic_suffix, prefix=prefix) for f in filters]
        inputs = filter_input_columns(science.schema, survey.name, filter_inputs(filters))
        key: Column | None = None
        value: Column | None = None
        # filters that publish the same columns share one schema; usually all publish all
        by_columns: dict[tuple[str, ...], list[str]] = {}
        for f, topic in zip(filters, topics, strict=True):
            cols = tuple(published_columns(science, f.publish, cutouts))
            by_columns.setdefault(cols, []).append(topic)
        for cols, group in by_columns.items():
            k, v = key_value(spark, science, cols)
            chosen = F.col("topic").isin(group)
            key = F.when(chosen, k) if key is None else key.when(chosen, k)
            value = F.when(chosen, v) if value is None else value.when(chosen, v)
        assert key is not None and value is not None
        verdicts = verdicts_column(filters, inputs.columns, policy)
        topics_per_alert = topics_column(filters, topics, F.col(VERDICTS))
        return _Routing(inputs.stage_select(), verdicts, topics_per_alert, key, value)

    memo = (
        science.schema.json(),
        survey.name,
        survey.topic_suffix,
        tuple(f.name for f in filters),
        prefix,
        cutouts,
        policy,
    )
    return _ROUTINGS.get(memo, build)


def routed(
    spark: SparkSession,
    science: DataFrame,
    survey: str | SurveyAdapter,
    filters: Sequence[AlertFilter],
    *,
    prefix: str = "fink_",
    cutouts: bool = True,
    policy: str = "fail",
    failures: Observation | None = None,
) -> DataFrame:
    """Pure builder: science alerts -> (topic, key, value) rows, one per matching filter.

    ``policy`` is the filters' failure policy; ``failures``, when given, observes per
    filter the alerts it failed on (before the explode, so each alert counts once).
    """
    routing = _routing(spark, science, as_adapter(survey), filters, prefix, cutouts, policy)
    judged = science.select("*", *routing.stage).withColumn(VERDICTS, routing.verdicts)
    if failures is not None:
        judged = judged.observe(failures, *failure_counts(filters, F.col(VERDICTS)))
    exploded = judged.withColumn("topic", F.explode(routing.topics))
    matched = exploded.where(F.col("topic").isNotNull())
    return matched.select("topic", routing.key.alias("key"), routing.value.alias("value"))


class DistributionBatchWriter:
    """The ``foreachBatch`` body: route, count per topic, publish, log."""

    def __init__(self, spark: SparkSession, settings: Settings, survey: SurveyAdapter) -> None:
        self.spark = spark
        self.adapter = survey
        self.survey = survey.name
        self.filters = selected_filters(settings, survey.name)
        self.settings = settings
        self.kafka = outgoing_kafka(settings)
        # the settings section an operator must fix when the output cluster refuses the login
        self.kafka_section = "output_kafka" if settings.output_kafka.bootstrap_servers else "kafka"
        self.kafka_options = spark_producer_options(self.kafka)
        self.metrics = MetricsLog(settings, SERVICE)
        #: the operator-facing error that failed a batch, re-raised as such by :func:`run`
        self.failure: FinkError | None = None
        self.topics = [
            topic_name(f, survey.topic_suffix, prefix=settings.distribution.topic_prefix)
            for f in self.filters
        ]
        self._topics_ready = False

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        start = time.monotonic()
        # One pass, no cache: the Kafka write observes the alerts in and the messages per
        # topic, so the filters run and each message is encoded once. Caching the messages
        # (cutouts included) cost more than the write; counting first ran the filters twice.
        tag = f"{SERVICE}_{batch_id}_{uuid.uuid4().hex}"
        seen_in, seen_out = Observation(f"{tag}_in"), Observation(f"{tag}_out")
        seen_failed = Observation(f"{tag}_failed")
        messages = routed(
            self.spark,
            batch.observe(seen_in, F.count(F.lit(1)).alias("alerts")),
            self.adapter,
            self.filters,
            prefix=self.settings.distribution.topic_prefix,
            cutouts=self.settings.distribution.cutouts,
            policy=self.settings.distribution.failure_policy,
            failures=seen_failed,
        )
        per_topic_counts = [F.count_if(F.col("topic") == F.lit(t)).alias(t) for t in self.topics]
        self._ensure_topics()
        self._publish(
            messages.observe(seen_out, F.count(F.lit(1)).alias("_all"), *per_topic_counts),
            batch_id,
        )
        out = seen_out.get
        per_topic = {t: int(out[t]) for t in self.topics if out[t]}
        rows_in = int(seen_in.get["alerts"])
        failed = {name: int(n) for name, n in seen_failed.get.items() if n}
        metrics = BatchMetrics(
            service=SERVICE,
            batch_id=batch_id,
            rows_in=rows_in,
            rows_out=sum(per_topic.values()),
            duration_s=round(time.monotonic() - start, 3),
            detail={"topics": per_topic, "survey": self.survey, "filter_failures": failed},
        )
        self.metrics.append(metrics)
        log.info(
            "batch=%d alerts_in=%d messages_out=%d topics=%s filter_failures=%s duration=%.2fs",
            batch_id,
            rows_in,
            metrics.rows_out,
            per_topic,
            failed,
            metrics.duration_s,
        )

    def _ensure_topics(self) -> None:
        """Create the filter topics before the first publication (once per run)."""
        if self._topics_ready:
            return
        try:
            ensure_topics(self.kafka, self.topics, section=self.kafka_section)
        except (KafkaAuthError, TopicsRefused) as refused:
            # the operator must act: the service stops with this message, not restarted
            log.error("topics not created: %s", refused)
            self.failure = refused
            raise
        self._topics_ready = True

    def _publish(self, messages: DataFrame, batch_id: int) -> None:
        """Write the batch to its topics; refused credentials fail it with a clear error.

        Spark's Kafka sink does not hang on a wrong password: the Kafka producer treats the
        refusal as fatal and the task fails in seconds. But the error is a JVM stack trace
        that names neither the setting nor the user, so it becomes a ``KafkaAuthError``.
        """
        try:
            # append: the DataSource V2 write (see engine.session), whose execution reports
            # the metrics the messages observe
            messages.write.format("kafka").mode("append").options(**self.kafka_options).save()
        except Exception as err:  # Py4JJavaError or a captured Spark error: both carry the cause
            refused = refused_login(err, self.kafka, self.kafka_section)
            if refused is None:
                raise
            log.error("batch=%d not published: %s", batch_id, refused)
            self.failure = refused
            raise refused from None


def science_source(spark: SparkSession, settings: Settings, survey: str) -> DataFrame:
    """Streaming read of the survey's science archive; a live run waits for raw2science's
    first batch, a bounded (availableNow) run needs the archive to exist already."""
    return upstream_stream(
        spark,
        Lake(settings.paths.root, survey).science,
        trigger=settings.distribution.trigger,
        max_files_per_trigger=settings.distribution.max_files_per_trigger,
        wait_live_s=WAIT_FOR_ARCHIVE_S,
    )


def start(
    settings: Settings,
    spark: SparkSession | None = None,
    survey: SurveyAdapter | None = None,
    *,
    reset_checkpoint: bool = False,
) -> StreamingQuery:
    """Start the distribution query of ``survey`` (default: the configured one; non-blocking).

    ``reset_checkpoint`` sets the checkpoint aside: the science archive is published again
    (at-least-once; each record carries its alert id for consumers to de-duplicate).
    """
    return _start(settings, spark, survey, reset_checkpoint)[0]


def _start(
    settings: Settings,
    spark: SparkSession | None = None,
    adapter: SurveyAdapter | None = None,
    reset_checkpoint: bool = False,
) -> tuple[StreamingQuery, DistributionBatchWriter]:
    """The query and its batch writer, whose ``failure`` :func:`run` reports."""
    spark = spark or get_session(settings, app_name=f"fink-{SERVICE}")
    adapter = adapter or build_survey(settings)
    survey = adapter.name
    lake = Lake(settings.paths.root, survey)
    if reset_checkpoint:
        set_aside(spark, SERVICE, lake.checkpoint(SERVICE))
    writer = DistributionBatchWriter(spark, settings, adapter)
    if not writer.filters:
        raise ValueError(f"no filter installed for {survey}")
    log.info(
        "distribution: %s %s -> %s, filters %s",
        survey,
        lake.science,
        outgoing_kafka(settings).bootstrap_servers,
        [f.name for f in writer.filters],
    )
    query = (
        science_source(spark, settings, survey)
        .writeStream.queryName(f"{SERVICE}_{survey}")
        .foreachBatch(writer)
        .option("checkpointLocation", lake.checkpoint(SERVICE))
        .trigger(**trigger_kwargs(settings.distribution.trigger))
        .start()
    )
    return query, writer


def filter_frame(science: DataFrame, survey: str, names: Sequence[str]) -> pd.DataFrame:
    """The filter inputs ``names`` of the science alerts, as the filters receive them."""
    inputs = filter_input_columns(science.schema, survey, names)
    staged = science.select("*", *inputs.stage_select())
    return staged.select(*[c.alias(n) for n, c in inputs.columns.items()]).toPandas()


def dry_run(
    settings: Settings, name: str, night: str, survey: SurveyAdapter | None = None
) -> tuple[int, int]:
    """(alerts that pass filter ``name``, alerts) in the science archive of ``night``.

    Nothing is published: the filter runs on the archived alerts, as the service would.
    """
    from fink_broker.plugins.filters import run_filter

    spark = get_session(settings, app_name=f"fink-{SERVICE}-dry-run")
    survey = (survey or build_survey(settings)).name
    wanted = [f for f in filters_for(survey, discover_filters()) if f.name == name]
    if not wanted:
        raise ValueError(f"no filter {name!r} installed for {survey}")
    (alert_filter,) = wanted
    science = read_archive(spark, Lake(settings.paths.root, survey).science)
    frame = filter_frame(science.where(F.col("night") == night), survey, alert_filter.inputs)
    return int(run_filter(alert_filter, frame).sum()), len(frame)


def run(
    settings: Settings, survey: SurveyAdapter | None = None, *, reset_checkpoint: bool = False
) -> None:
    """Run the distribution until the archive is drained (availableNow) or until SIGTERM.

    A failure the operator can act on (refused credentials) is raised as its ``FinkError``,
    which the CLI prints as one line, not as the query's wrapped Python traceback.
    """
    query, writer = _start(settings, adapter=survey, reset_checkpoint=reset_checkpoint)
    try:
        await_with_graceful_stop(query)
    except Exception:  # StreamingQueryException, or the RuntimeError of a query seen ended
        if writer.failure is not None:
            raise writer.failure from None
        raise
