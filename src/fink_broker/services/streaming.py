"""What every streaming service shares: input topic names, graceful stop, batch metrics.

Imports no pyspark at run time, so Kafka-only services use it too.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fink_broker.config import Settings
from fink_broker.surveys.base import SurveyAdapter, default_topic

if TYPE_CHECKING:  # the Kafka-only services (checkstream) import this module without a JVM
    from pyspark.sql.streaming import StreamingQuery

log = logging.getLogger(__name__)


def input_topic(settings: Settings, adapter: SurveyAdapter, night: str | None = None) -> str:
    """The configured topic, or the survey's default topic of the night."""
    if settings.stream2raw.topic:
        return settings.stream2raw.topic
    return default_topic(adapter, night)


@dataclass
class BatchMetrics:
    """One line per micro-batch: what came in, what went where, how long it took."""

    service: str
    batch_id: int
    rows_in: int
    rows_out: int
    quarantined: int = 0
    duration_s: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict)
    time: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))


def metrics_path(settings: Settings, service: str) -> Path:
    """The JSON-lines file of a service's micro-batches (and its supervisor's restarts)."""
    return Path(settings.paths.state_dir) / "metrics" / f"{service}.jsonl"


def metrics_lines(settings: Settings, service: str) -> Iterator[dict[str, Any]]:
    """Every whole line of a service's metrics file, in order (none if it has none yet).

    A line cut by a SIGKILL mid-write is skipped: the batch it described is replayed from
    the checkpoint and logged again.
    """
    path = metrics_path(settings, service)
    if not path.exists():
        return
    with path.open() as handle:
        for text in handle:
            try:
                line = json.loads(text)
            except ValueError:
                continue
            if isinstance(line, dict):
                yield line


def committed_batches(settings: Settings, service: str) -> dict[int, dict[str, Any]]:
    """Batch id -> the last line logged for it: a batch replayed after a kill is logged
    again under its id, and counting by id counts it once."""
    return {
        line["batch_id"]: line
        for line in metrics_lines(settings, service)
        if "event" not in line and "batch_id" in line
    }


def restart_events(settings: Settings, service: str) -> list[dict[str, Any]]:
    """The restarts a service's supervisor logged (reason, wait, time), in order."""
    return [line for line in metrics_lines(settings, service) if "event" in line]


class MetricsLog:
    """Appends batch metrics as JSON lines under ``<state_dir>/metrics/<service>.jsonl``.

    Operators (and `fink show`) read totals from it without a Spark UI; the same numbers
    go to the service log.
    """

    def __init__(self, settings: Settings, service: str) -> None:
        self.path = metrics_path(settings, service)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        #: the last line appended (the one-pass pipeline sums its stages' counts)
        self.last: BatchMetrics | None = None

    def append(self, metrics: BatchMetrics) -> None:
        self.last = metrics
        with self.path.open("a") as handle:
            handle.write(json.dumps(asdict(metrics)) + "\n")


#: set by SIGTERM/SIGINT while a query runs: the service is being stopped, and whatever
#: fails from then on (the JVM shuts down with the process group) is no reason to restart
STOP_REQUESTED = threading.Event()


def stop_requested() -> bool:
    """Whether the operator asked this process to stop (``fink stop``, Ctrl-C)."""
    return STOP_REQUESTED.is_set()


def await_with_graceful_stop(query: StreamingQuery, timeout_s: float = 120.0) -> None:
    """Wait for ``query``; on SIGTERM/SIGINT let the running micro-batch finish, then stop.

    Stopping between micro-batches is not needed for correctness (checkpoints replay an
    interrupted batch exactly once) but avoids redoing work and leaves tidy logs.
    """
    requested = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("signal %s: stopping after the current micro-batch", signum)
        requested.set()
        STOP_REQUESTED.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        while query.isActive:
            if requested.is_set():
                deadline = time.monotonic() + timeout_s
                while query.status.get("isTriggerActive") and time.monotonic() < deadline:
                    time.sleep(0.2)
                query.stop()
                break
            query.awaitTermination(0.5)
        exception = query.exception()
        if exception is not None:
            raise RuntimeError(f"query {query.name} failed: {exception}")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
