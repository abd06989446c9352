"""Checkpoint and archive consistency: a service never skips alerts its archive lacks.

The Parquet sinks skip a micro-batch whose id they have committed (that is how a replay
after a crash writes nothing twice). If the query's checkpoint is lost while the archive
is kept, the new query numbers its batches from 0 again and every one of them up to the
archive's latest would be skipped as a "replay": alerts silently lost. So at start:

- the checkpoint and the sink agree (the sink holds no batch the query has not planned in
  its offsets log), and the service runs; or
- they do not, and the service refuses to start with :class:`CheckpointMismatch`, which
  says what happened and how to reset.

``--reset-checkpoint`` moves the old checkpoint aside (nothing is deleted) and starts a new
one whose batch ids continue after the sink's latest (a *resume* record in the new
checkpoint). The input is read again from where the new checkpoint starts, so alerts the
archive already holds come back; they are removed by their alert id, against the archive's
partitions (nights) that existed at the reset, and only those: an alert of a later night
cannot be in the archive already, so a new night costs nothing.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from fink_broker.engine.session import jvm_class
from fink_broker.errors import FinkError

log = logging.getLogger(__name__)

#: Fink's Java reader of checkpoint and sink logs (infra/java)
SINK_STATE = "org.fink.broker.SinkState"
#: the file of a checkpoint started by --reset-checkpoint
RESUME_FILE = "fink_resume.json"
#: the partition column of the archives
NIGHT = "night"


class CheckpointMismatch(FinkError):
    """The checkpoint is behind the archive it writes (deleted, or restored from a copy)."""


@dataclass(frozen=True)
class Resume:
    """Where a checkpoint's batch ids start in the sink, and which nights may hold replays."""

    #: sink batch id = ``base`` + the query's batch id
    base: int = 0
    #: the archive's nights at the reset: rows of these nights are de-duplicated by alert id
    nights: tuple[str, ...] = ()
    #: the folder the old checkpoint was moved to
    previous: str = ""


def latest_sink_batch(spark: SparkSession, sink: str) -> int:
    """The latest micro-batch id the Parquet folder ``sink`` committed, or -1."""
    return int(jvm_class(spark, SINK_STATE).latestSinkBatch(spark._jsparkSession, sink))


def latest_checkpoint_batch(spark: SparkSession, checkpoint: str) -> int:
    """The latest micro-batch id the query's checkpoint planned (its offsets log), or -1."""
    return int(jvm_class(spark, SINK_STATE).latestCheckpointBatch(spark._jsparkSession, checkpoint))


def read_resume(spark: SparkSession, checkpoint: str) -> Resume:
    """The checkpoint's resume record (a plain checkpoint: base 0, no de-duplication)."""
    text = jvm_class(spark, SINK_STATE).readText(
        spark._jsparkSession, f"{checkpoint}/{RESUME_FILE}"
    )
    if text is None:
        return Resume()
    data = json.loads(text)
    return Resume(int(data["base"]), tuple(data.get("nights", ())), data.get("previous", ""))


def set_aside(spark: SparkSession, service: str, checkpoint: str) -> str:
    """Move a checkpoint aside (a sink without batch log: Kafka topics, HBase): the input
    is read again from the start; the HBase rows are idempotent, the topics at-least-once."""
    aside = f"{checkpoint}.reset-{time.strftime('%Y%m%dT%H%M%S')}"
    if jvm_class(spark, SINK_STATE).moveAside(spark._jsparkSession, checkpoint, aside):
        log.warning("%s: checkpoint reset, the old one is in %s", service, aside)
        return aside
    return ""


def reset(spark: SparkSession, service: str, checkpoint: str, sinks: Sequence[str]) -> Resume:
    """Move the checkpoint aside and start one whose batches follow the sinks' latest.

    ``sinks[0]`` is the archive whose alerts are de-duplicated; the others (stream2raw's
    quarantine) only need their batch ids to continue too."""
    sink = sinks[0]
    state = jvm_class(spark, SINK_STATE)
    aside = f"{checkpoint}.reset-{time.strftime('%Y%m%dT%H%M%S')}"
    moved = bool(state.moveAside(spark._jsparkSession, checkpoint, aside))
    prefix = f"{NIGHT}="
    nights = sorted(
        name[len(prefix) :]
        for name in state.partitions(spark._jsparkSession, sink)
        if name.startswith(prefix)
    )
    base = max(latest_sink_batch(spark, path) for path in sinks) + 1
    resume = Resume(base, tuple(nights), aside if moved else "")
    state.writeText(spark._jsparkSession, f"{checkpoint}/{RESUME_FILE}", json.dumps(asdict(resume)))
    log.warning(
        "%s: checkpoint reset (old one in %s); batches continue at %d in %s, alerts of "
        "nights %s already there are dropped by id",
        service,
        resume.previous or "nowhere, there was none",
        resume.base,
        sink,
        list(nights),
    )
    return resume


def check(
    spark: SparkSession,
    service: str,
    checkpoint: str,
    sinks: Sequence[str],
    *,
    reset_checkpoint: bool,
) -> Resume:
    """Refuse to start a query whose checkpoint is behind its sinks; or reset it, if asked."""
    if reset_checkpoint:
        return reset(spark, service, checkpoint, sinks)
    resume = read_resume(spark, checkpoint)
    done = latest_checkpoint_batch(spark, checkpoint)
    written, sink = max((latest_sink_batch(spark, path), path) for path in sinks)
    # a sink may hold the planned batch the checkpoint has not committed (a crash between
    # the two commits), never one the query did not plan
    if written > resume.base + done:
        state = "missing" if done < 0 else f"at batch {done}"
        raise CheckpointMismatch(
            f"{service}: the checkpoint {checkpoint} is {state}, but {sink} has committed "
            f"batches up to {written - resume.base}. Starting would skip the alerts of those "
            f"batch ids as replays. If the checkpoint was deleted or restored from an older "
            f"copy, start again with `fink start {service} --reset-checkpoint`: the input is "
            "read again and the alerts the archive already holds are dropped by their id."
        )
    return resume


def drop_archived(
    spark: SparkSession, rows: DataFrame, sink: str, resume: Resume, alert_id: str
) -> DataFrame:
    """``rows`` without the alerts the sink held at the reset (same alert id, same night).

    Only the nights of the resume record are read, and only their id column.
    """
    if not resume.nights:
        return rows
    held = (
        spark.read.parquet(sink)
        .where(F.col(NIGHT).isin(list(resume.nights)))
        .select(F.col(alert_id).alias("_fink_held_id"), F.col(NIGHT).alias("_fink_held_night"))
    )
    keyed = rows.withColumn("_fink_id", F.col(alert_id))
    kept = keyed.join(
        held,
        (keyed["_fink_id"] == held["_fink_held_id"]) & (keyed[NIGHT] == held["_fink_held_night"]),
        "left_anti",
    )
    return kept.drop("_fink_id")


def sink_batch(resume: Resume, batch_id: int) -> int:
    """The sink's batch id of the query's micro-batch ``batch_id``."""
    return resume.base + batch_id
