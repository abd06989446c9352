"""Where stream2raw stands on its input topics, and where those topics end.

Spark's Kafka source commits nothing to Kafka: a query's progress lives only in its
checkpoint, as the offsets each micro-batch will read up to (``offsets/<batchId>``, written
when the batch starts; ``commits/<batchId>`` when it is done). The lag of stream2raw is
therefore those offsets against the topic's end offsets, which the Kafka admin API gives
for many partitions in one request. ``checkstream`` and the dashboard both read it here, so
the two views of the same lag cannot disagree.

Pure Python (confluent-kafka's admin client, no JVM), and read-only: the checkpoint is
never written, and nothing joins a consumer group.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from fink_broker.config import Settings
from fink_broker.lake import Lake, is_local
from fink_broker.surveys import SURVEYS


def read_spark_offsets(text: str) -> dict[str, dict[int, int]]:
    """Topic -> partition -> next offset, from the text of a Spark ``offsets/<id>`` file.

    Line 1 is the log version, line 2 the batch metadata, then one line per source; a
    Kafka source line maps topic -> {partition: offset}, other sources look different and
    are skipped, as are sources without offsets (``-``).

    >>> read_spark_offsets('v1\\n{"batchWatermarkMs":0}\\n{"t":{"0":25,"1":14}}')
    {'t': {0: 25, 1: 14}}
    """
    out: dict[str, dict[int, int]] = {}
    for line in text.splitlines()[2:]:
        try:
            source = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(source, dict):
            continue
        for topic, offsets in source.items():
            if isinstance(offsets, dict) and all(isinstance(v, int) for v in offsets.values()):
                out.setdefault(topic, {}).update({int(p): int(v) for p, v in offsets.items()})
    return out


def latest_batch(checkpoint: Path) -> int | None:
    """Highest batch id in ``<checkpoint>/offsets`` (files named by id; .crc and temp skipped)."""
    folder = checkpoint / "offsets"
    if not folder.is_dir():
        return None
    ids = [int(p.name) for p in folder.iterdir() if p.name.isdigit()]
    return max(ids) if ids else None


@dataclass(frozen=True)
class CheckpointPosition:
    """The newest offsets of one survey's stream2raw checkpoint.

    ``offsets`` maps topic -> partition -> the next offset stream2raw reads once batch
    ``batch`` is done; ``committed`` says whether it is done. ``error`` is set (and
    ``offsets`` empty) when the file could not be read, e.g. while Spark replaced it.
    """

    survey: str
    checkpoint: str
    batch: int
    committed: bool
    offsets: dict[str, dict[int, int]] = field(default_factory=dict)
    error: str = ""


#: the services that read the survey's Kafka stream, by the name of their checkpoint
KAFKA_READERS = ("stream2raw", "pipeline")


def _written_at(checkpoint: Path, batch: int) -> float:
    """When the offsets of ``batch`` were written (0 if the file is being replaced)."""
    try:
        return (checkpoint / "offsets" / str(batch)).stat().st_mtime
    except OSError:
        return 0.0


def stream2raw_positions(settings: Settings) -> list[CheckpointPosition]:
    """The newest position of every stream2raw checkpoint under a local data root (or of
    the one-pass pipeline's, whichever ran last).

    The configured survey comes first (one root can hold both surveys' checkpoints);
    surveys whose checkpoint has no batch yet are left out. A Hadoop URI root gives an
    empty list: its checkpoints are not read from here.
    """
    root = settings.paths.root
    if not is_local(root):
        return []
    first = settings.stream2raw.survey
    out = []
    for survey in [first, *(s for s in SURVEYS if s != first)]:
        lake = Lake(root.removeprefix("file://"), survey)
        found = [
            (checkpoint, batch)
            for checkpoint in (Path(lake.checkpoint(name)) for name in KAFKA_READERS)
            if (batch := latest_batch(checkpoint)) is not None
        ]
        if not found:
            continue
        # the reader that ran last: a root fed by stream2raw once may run the pipeline now
        checkpoint, batch = max(found, key=lambda pair: _written_at(*pair))
        committed = (checkpoint / "commits" / str(batch)).exists()
        try:
            offsets = read_spark_offsets((checkpoint / "offsets" / str(batch)).read_text())
        except OSError as err:  # the file may be replaced while Spark writes the next batch
            out.append(
                CheckpointPosition(survey, str(checkpoint), batch, committed, error=str(err))
            )
            continue
        out.append(CheckpointPosition(survey, str(checkpoint), batch, committed, offsets))
    return out


def end_offsets(
    admin: Any,
    partitions: Iterable[tuple[str, int]],
    end: Literal["low", "high"],
    timeout: float,
) -> dict[tuple[str, int], int]:
    """(topic, partition) -> its ``low`` or ``high`` watermark, in one admin request.

    ``admin`` is a confluent-kafka ``AdminClient``; a broker that does not answer within
    ``timeout`` seconds raises (``KafkaException`` or a timeout), for the caller to report.
    """
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import OffsetSpec

    spec = {"low": OffsetSpec.earliest, "high": OffsetSpec.latest}[end]()
    request = {TopicPartition(t, p): spec for t, p in sorted(set(partitions))}
    if not request:
        return {}
    futures = admin.list_offsets(request, request_timeout=timeout)
    return {(tp.topic, tp.partition): f.result(timeout=timeout).offset for tp, f in futures.items()}


def lag_of(nexts: Mapping[int, int | None], highs: Mapping[int, int]) -> dict[int, int | None]:
    """Messages left per partition of ``highs`` for a reader at ``nexts`` (None: unknown).

    A partition the reader has not reached yet (absent from ``nexts``) is unknown, not
    zero; a reader ahead of the watermark (a topic re-created) counts as caught up.

    >>> lag_of({0: 25, 1: 14}, {0: 30, 1: 14, 2: 7})
    {0: 5, 1: 0, 2: None}
    """
    out: dict[int, int | None] = {}
    for partition, high in highs.items():
        mine = nexts.get(partition)
        out[partition] = None if mine is None else max(0, high - mine)
    return out
