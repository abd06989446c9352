"""raw2science: raw Parquet -> quality cuts -> science modules -> science Parquet by night.

A Spark file-source stream over the raw archive of one survey (checkpointed, so each raw
file is processed once) feeds a ``foreachBatch`` the paths of its new raw files. The batch
reads them, counts the alerts each quality cut removes, keeps those that pass every cut,
runs every enabled science module in one Arrow UDF on a second read that holds only their
inputs (the survey-agnostic canonical columns), zips their values back to the alerts by
position (``engine.positional_zip``), stamps provenance, and writes
``science/<survey>/night=YYYYMMDD/`` exactly once (``engine.sinks``).
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, Observation, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.streaming import StreamingQuery

from fink_broker import __version__
from fink_broker.config import Settings
from fink_broker.engine.built_columns import BuiltColumns
from fink_broker.engine.canonical import canonical_staged, cut_flags, passes_all
from fink_broker.engine.modules import (
    FAILURES_COLUMN,
    FailureCounters,
    external_inputs,
    modules_column,
)
from fink_broker.engine.positional_zip import zip_by_position
from fink_broker.engine.session import get_session, now
from fink_broker.engine.sink_state import Resume, check, drop_archived, sink_batch
from fink_broker.engine.sinks import committed, write_batch
from fink_broker.engine.sources import BatchFiles, file_paths, upstream_stream
from fink_broker.engine.triggers import trigger_kwargs
from fink_broker.lake import Lake
from fink_broker.plugins import (
    FailurePolicy,
    ScienceModule,
    discover,
    module_signature,
    resolve_order,
)
from fink_broker.plugins import modules_for as installed_modules_for
from fink_broker.science import local_catalogues
from fink_broker.services.streaming import BatchMetrics, MetricsLog, await_with_graceful_stop
from fink_broker.surveys import SurveyAdapter, build_survey
from fink_broker.surveys.fields import CANONICAL_NAMES, Cut

log = logging.getLogger(__name__)

SERVICE = "raw2science"
#: how long a live raw2science waits for the raw archive to appear (a night is ~12 h)
WAIT_FOR_ARCHIVE_S = 12 * 3600.0
#: the provenance columns are constants of the run: the engine sets them on the JVM
PROVENANCE_MODULE = "provenance"


def selected_modules(settings: Settings, survey: str) -> list[ScienceModule]:
    """Enabled modules for the survey, in dependency order (empty with ``noscience``)."""
    if settings.raw2science.noscience:
        return []
    available = installed_modules_for(survey, discover())
    available = [m for m in available if m.name != PROVENANCE_MODULE]
    local = local_catalogues.local_module(settings)
    if local is not None:
        if local.name in {m.name for m in available}:
            raise ValueError(f"an installed module is named {local.name}, as Fink's own is")
        available.append(local)
    wanted = settings.raw2science.modules
    if wanted:
        unknown = sorted(set(wanted) - {m.name for m in available})
        if unknown:
            raise ValueError(f"modules {unknown} are not installed for {survey}")
        available = [m for m in available if m.name in wanted]
    return resolve_order(available)


#: the Kafka coordinates of an alert, unique in a raw archive (stream2raw writes each message
#: exactly once): the zip checks each alert's module values against them
ALERT_KEY = ("kafka_topic", "kafka_partition", "kafka_offset")
#: the names of the alert key's copies at the end of the modules' values
VALUES_KEY = tuple(f"__fink_key_{n}" for n in ALERT_KEY)


@dataclass(frozen=True)
class _ModuleSide:
    """The selects of the modules' read of the alerts, in the order applied."""

    #: the raw columns, ``processing_start`` and the canonical columns' stage (sorted
    #: epoch arrays)
    staged: list[Column]
    #: the alert key, ``processing_start`` and the modules' struct ``_fink``
    enriched: list[Column]
    #: what the science row adds to the alert (module outputs, failures, provenance), then
    #: the alert key (``VALUES_KEY``)
    values: list[Column]


@dataclass(frozen=True)
class _SciencePlan:
    """The expressions of :func:`science_rows` for one raw schema."""

    #: the quality cuts: rows kept
    passes: Column
    #: one flag per cut (True: passes it), then ``passes``: what the zip counts
    flags: list[Column]
    #: the alert as archived: the raw columns without the raw archive's version
    alert: list[Column]
    #: the modules' read (None without modules)
    modules: _ModuleSide | None
    #: without modules, the science row over ``alert``: ``processing_start``, then the
    #: engine's columns and provenance
    cuts_only: tuple[list[Column], list[Column]]


#: science plans by (raw schema, survey, cuts, modules, policy, failure counters)
_PLANS = BuiltColumns[_SciencePlan]()


def _science_plan(
    schema: T.StructType,
    survey: str,
    cuts: Sequence[Cut],
    modules: Sequence[ScienceModule],
    policy: FailurePolicy,
    failures: FailureCounters | None,
) -> _SciencePlan:
    raw_columns = [F.col(f"`{n}`") for n in schema.names if n != "fink_broker_version"]
    passes = passes_all(cuts, schema)
    flags = [*cut_flags(schema, cuts), passes.alias("_kept")]
    if not modules:
        stamped = [*raw_columns, now().alias("processing_start")]
        engine = [
            F.lit(None).cast("string").alias(FAILURES_COLUMN.name),
            now().alias("processing_end"),
        ]
        final = [*raw_columns, *engine, *_provenance(modules)]
        return _SciencePlan(passes, flags, raw_columns, None, (stamped, final))
    absent = [n for n in ALERT_KEY if n not in schema.names]
    if absent:
        raise ValueError(f"not a raw alert archive: no {absent} (Kafka coordinates)")
    # module inputs are canonical columns, or else raw alert fields by their path
    needed = external_inputs(modules)
    canonical = canonical_staged(schema, survey, [n for n in needed if n in CANONICAL_NAMES])
    inputs = dict(canonical.columns)
    inputs.update({n: F.col(n) for n in needed if n not in CANONICAL_NAMES})
    # The inputs that read raw fields are computed in the stage's select too: Spark does
    # not merge that select into the UDF's (the stage's sorted epochs feed several
    # inputs), so an input read in the UDF's, ``diaSource.ra``, kept the whole struct in
    # the stage's output and Spark read all of Rubin's ~100 fields.
    hidden = {n: f"__fink_input_{i}" for i, n in enumerate(inputs) if n not in canonical.from_stage}
    read_inputs = {n: F.col(hidden[n]) if n in hidden else c for n, c in inputs.items()}
    udf = modules_column(modules, read_inputs, policy, failures)
    outputs = [c.name for m in modules for c in m.outputs]
    outputs += [FAILURES_COLUMN.name, "processing_end"]
    side = _ModuleSide(
        # every raw column, of which Spark's column pruning reads only what the UDF needs
        staged=[
            *raw_columns,
            now().alias("processing_start"),
            *canonical.stage_select(),
            *[inputs[n].alias(h) for n, h in hidden.items()],
        ],
        enriched=[*[F.col(n) for n in ALERT_KEY], F.col("processing_start"), udf.alias("_fink")],
        values=[
            *[F.col(f"_fink.{name}").alias(name) for name in outputs],
            *_provenance(modules),
            *[F.col(n).alias(a) for n, a in zip(ALERT_KEY, VALUES_KEY, strict=True)],
        ],
    )
    return _SciencePlan(passes, flags, raw_columns, side, ([], []))


def _provenance(modules: Sequence[ScienceModule]) -> list[Column]:
    """The last columns of a science row: who made it, with which modules, from when."""
    return [
        F.lit(__version__).alias("fink_broker_version"),
        F.lit(module_signature(modules) if modules else "no-science").alias("fink_science_modules"),
        F.col("processing_start"),
    ]


@dataclass(frozen=True)
class ScienceRows:
    """A science frame, the counts of its cuts, and the modules' read it zips in."""

    frame: DataFrame
    #: read once the frame is written: rows in (``_in``), rows kept (``_kept``), and the
    #: rows each cut removed (by the cut's name)
    counts: Callable[[], dict[str, int]]
    #: the modules' values, from their own read, that ``frame`` zips to the alerts (None
    #: without modules): its plan shows what travels to Python
    values: DataFrame | None = None
    #: whether the zip reads the alerts from the scan's column batches (one row copy, as
    #: without the zip) rather than from rows the scan made (one more)
    columnar: bool = False


def science_rows(
    raw: DataFrame,
    survey: str,
    cuts: Sequence[Cut],
    modules: Sequence[ScienceModule],
    policy: FailurePolicy,
    failures: FailureCounters | None = None,
    *,
    tasks: int | None = None,
) -> ScienceRows:
    """Pure builder: raw alerts -> the alerts that pass the cuts, with Fink's added values,
    and the counts of the cuts, read once the frame is written.

    Runs the same on ``spark.read`` (tests, replays) and on a streaming micro-batch.

    The modules run on a second read of the same files that holds only their inputs, and
    ``zip_by_position`` joins their values to the alerts by position, in the task that
    reads the alerts for the write: one Spark job, no join. In one pass, Spark copied every
    whole alert, cutouts included, twice more and queued it until its Arrow batch returned
    from Python; joining a second read back by Kafka coordinates cost a broadcast job and a
    hash join. On 20,000 Rubin alerts (``benchmarks/raw2science.py``) the modules added
    0.52 and 0.70 s (two runs) to a bounded run zipped, 1.14 s broadcast-joined; a
    micro-batch of 2,500 took 1.20 s zipped, 1.66 s in one pass, and one of 300, 0.68 s
    and 0.74 s. ``tasks``: both reads in that many tasks (one per core: each Python task
    pays a fixed cost), else one per file split.

    ``processing_start`` is read as each alert enters the modules, ``processing_end`` as
    the modules have finished its Arrow batch. The expressions are built once per raw
    schema (``_PLANS``): a live stream's batches reuse them.
    """
    policy = FailurePolicy(policy)
    key = (
        raw.schema.json(),
        survey,
        tuple(cuts),
        tuple((m.name, m.version) for m in modules),
        policy,
        failures,  # the object itself: an id could be reused once it is collected
    )
    plan = _PLANS.get(
        key, functools.partial(_science_plan, raw.schema, survey, cuts, modules, policy, failures)
    )
    if plan.modules is None:
        # the counts of every raw row, before the cuts, as the write goes; a task per split
        observation = Observation(f"{SERVICE}_{uuid.uuid4().hex}")
        stamped, final = plan.cuts_only
        kept = raw.observe(observation, *cut_counts(raw.schema, cuts)).where(plan.passes)
        frame = kept.select(*stamped).select(*final)
        return ScienceRows(frame, lambda: _observed(observation, cuts))
    source = raw if tasks is None else raw.coalesce(tasks)
    alerts = source.select(*plan.alert)
    values = (
        source.where(plan.passes)
        .select(*plan.modules.staged)
        .select(*plan.modules.enriched)
        .select(*plan.modules.values)
    )
    zipped = zip_by_position(alerts, plan.flags, values, ALERT_KEY)
    names = _count_names(cuts)
    return ScienceRows(
        zipped.frame,
        lambda: dict(zip(names, zipped.counts(), strict=True)),
        values,
        zipped.columnar,
    )


def _count_names(cuts: Sequence[Cut]) -> list[str]:
    """The names of the cut counts: rows in, rows kept, then each cut's."""
    return ["_in", "_kept", *[cut.name for cut in cuts]]


def _observed(observation: Observation, cuts: Sequence[Cut]) -> dict[str, int]:
    counts = observation.get
    return {n: int(counts.get(n) or 0) for n in _count_names(cuts)}


def _cut_counts(schema: T.StructType, cuts: Sequence[Cut]) -> list[Column]:
    """The aggregates of the cut counts: rows in, rows kept, rows removed by each cut."""
    flags = cut_flags(schema, cuts)
    return [
        F.count(F.lit(1)).alias("_in"),
        F.sum(passes_all(cuts, schema).cast("int")).alias("_kept"),
        *[
            F.sum((~flag).cast("int")).alias(cut.name)
            for cut, flag in zip(cuts, flags, strict=True)
        ],
    ]


#: the aggregates of the cut counts by (raw schema, cuts), shared by the writers of a process
_COUNTS = BuiltColumns[list[Column]](capacity=4)


def cut_counts(schema: T.StructType, cuts: Sequence[Cut]) -> list[Column]:
    """The aggregates of the cut counts of alerts of ``schema``, built once per schema."""
    return _COUNTS.get((schema.json(), tuple(cuts)), functools.partial(_cut_counts, schema, cuts))


class ScienceBatchWriter:
    """The ``foreachBatch`` body: count cuts, build the science rows, write, log."""

    def __init__(
        self,
        spark: SparkSession,
        settings: Settings,
        survey: SurveyAdapter,
        resume: Resume | None = None,
    ) -> None:
        self.spark = spark
        self.survey = survey.name
        self.alert_id = survey.alert_id
        #: where the checkpoint's batch ids start in the archive (after a reset)
        self.resume = resume or Resume()
        self.cuts = survey.cuts
        self.modules = selected_modules(settings, survey.name)
        self.policy = FailurePolicy(settings.raw2science.failure_policy)
        self.lake = Lake(settings.paths.root, survey.name)
        self.metrics = MetricsLog(settings, SERVICE)
        self.failures = FailureCounters.of_session(spark, self.modules)
        #: tasks that run the modules: one per core. A file-source batch has one task per
        #: file split, and each Python task pays a fixed cost (worker hand-shake, the UDF
        #: and its Arrow stream set up, a JVM-Python round trip not overlapped with other
        #: work): on 20,000 ZTF alerts in 8 raw files, the modules' job took ~0.36 s less
        #: wall time with 2 tasks than with 8, the alert write no different either way.
        self.tasks = spark.sparkContext.defaultParallelism

    def __call__(self, batch: DataFrame, query_batch_id: int) -> None:
        """Write the science rows of ``batch``."""
        self.process(batch, query_batch_id)

    def process(
        self, batch: DataFrame, query_batch_id: int, *, keep: bool = False
    ) -> DataFrame | None:
        """Write the science rows of ``batch``; with ``keep``, return them too, cached.

        ``keep`` is the one-pass pipeline's: its distribution and archive read the science
        rows from memory, so a batch already committed is computed again (not written) for
        them; the caller unpersists the frame.
        """
        start = time.monotonic()
        batch_id = sink_batch(self.resume, query_batch_id)
        failed_before = self.failures.snapshot()
        duplicates = 0
        kept_rows: DataFrame | None = None
        done = committed(self.spark, self.lake.science, batch_id)
        if done and not keep:
            # replayed after a crash that followed the write: nothing is written, so
            # nothing is counted on the way; the cut columns alone are read (column pruning)
            row = batch.select(*cut_counts(batch.schema, self.cuts)).first()
            counts = {k: int(v or 0) for k, v in row.asDict().items()} if row else {}
        else:
            science = science_rows(
                batch,
                self.survey,
                self.cuts,
                self.modules,
                self.policy,
                self.failures,
                tasks=self.tasks,
            )
            rows, kept = science.frame, None
            if self.resume.nights:  # after --reset-checkpoint: re-read alerts already there
                rows = drop_archived(
                    self.spark, rows, self.lake.science, self.resume, self.alert_id
                )
                if not keep:  # a cached frame is counted from the cache instead
                    kept = Observation(f"{SERVICE}_kept_{batch_id}_{uuid.uuid4().hex}")
                    rows = rows.observe(kept, F.count(F.lit(1)).alias("rows"))
            if keep:
                kept_rows = rows = rows.persist(StorageLevel.MEMORY_AND_DISK)
            if done:
                rows.count()  # the cache is filled and the cuts counted on the way
            else:
                write_batch(self.spark, rows, self.lake.science, batch_id, ["night"])
            counts = science.counts()
            if self.resume.nights:
                left = kept_rows.count() if kept_rows is not None else int(kept.get["rows"])
                duplicates = counts.get("_kept", 0) - left
                counts["_kept"] = left
        rows_in = counts.get("_in", 0)
        rows_out = counts.get("_kept", 0)
        removed = {cut.name: counts.get(cut.name, 0) for cut in self.cuts}
        failures = self.failures.since(failed_before)
        metrics = BatchMetrics(
            service=SERVICE,
            batch_id=batch_id,
            rows_in=rows_in,
            rows_out=rows_out,
            duration_s=round(time.monotonic() - start, 3),
            detail={
                "cut": removed,
                "module_failures": failures,
                "survey": self.survey,
                "duplicates": duplicates,
            },
        )
        self.metrics.append(metrics)
        log.info(
            "batch=%d rows_in=%d cut=%d %s rows_out=%d modules=%d failures=%s duration=%.2fs",
            batch_id,
            rows_in,
            rows_in - rows_out,
            removed,
            rows_out,
            len(self.modules),
            failures or "none",
            metrics.duration_s,
        )
        for name, n in failures.items():
            log.warning(
                "module %s failed on %d alert(s) of batch %d: outputs nulled", name, n, batch_id
            )
        return kept_rows


def raw_source(spark: SparkSession, settings: Settings, survey: str) -> DataFrame:
    """Streaming read of the survey's raw archive; a live run waits for stream2raw's first
    batch, a bounded (availableNow) run needs the archive to exist already."""
    return upstream_stream(
        spark,
        Lake(settings.paths.root, survey).raw,
        trigger=settings.raw2science.trigger,
        max_files_per_trigger=settings.raw2science.max_files_per_trigger,
        wait_live_s=WAIT_FOR_ARCHIVE_S,
    )


def start(
    settings: Settings,
    spark: SparkSession | None = None,
    survey: SurveyAdapter | None = None,
    *,
    reset_checkpoint: bool = False,
) -> StreamingQuery:
    """Start the raw2science query of ``survey`` (default: the configured one; non-blocking).

    It refuses to start when the checkpoint is behind the science archive
    (``engine.sink_state``); ``reset_checkpoint`` starts a new one that continues it.
    """
    spark = spark or get_session(settings, app_name=f"fink-{SERVICE}")
    adapter = survey or build_survey(settings)
    survey_name = adapter.name
    lake = Lake(settings.paths.root, survey_name)
    resume = check(
        spark,
        SERVICE,
        lake.checkpoint(SERVICE),
        [lake.science],
        reset_checkpoint=reset_checkpoint,
    )
    writer = ScienceBatchWriter(spark, settings, adapter, resume)
    log.info(
        "raw2science: %s %s -> %s, cuts %s, modules %s (policy %s)",
        survey_name,
        lake.raw,
        lake.science,
        [c.name for c in writer.cuts],
        [m.name for m in writer.modules] or "none (--noscience)",
        writer.policy.value,
    )
    alerts = raw_source(spark, settings, survey_name)
    read = BatchFiles(spark, lake.raw, alerts.schema)

    def process(paths: DataFrame, batch_id: int) -> None:
        writer(read(read.files(paths)), batch_id)

    return (
        file_paths(alerts)
        .writeStream.queryName(f"{SERVICE}_{survey_name}")
        .foreachBatch(process)
        .option("checkpointLocation", lake.checkpoint(SERVICE))
        .trigger(**trigger_kwargs(settings.raw2science.trigger))
        .start()
    )


def run(
    settings: Settings, survey: SurveyAdapter | None = None, *, reset_checkpoint: bool = False
) -> None:
    """Run raw2science until the raw archive is drained (availableNow) or until SIGTERM."""
    await_with_graceful_stop(start(settings, survey=survey, reset_checkpoint=reset_checkpoint))


__all__ = ["run", "science_rows", "selected_modules", "start"]
