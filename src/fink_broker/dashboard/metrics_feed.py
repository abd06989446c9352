"""What each service's metrics file says: totals, rates, restarts, the last micro-batch.

Every streaming service appends one JSON line per micro-batch to
``<state_dir>/metrics/<service>.jsonl`` (:class:`fink_broker.services.streaming.BatchMetrics`),
and the supervisor of a service appends ``{"event": "restart", ...}`` lines to the same
file. The dashboard reads these files as they grow, from where it stopped, so a refresh
costs the new lines only and the services do no extra work for it.

A line that is not valid JSON, or not a batch or an event, is counted as unreadable (and the
first such line is kept for the page) instead of stopping the reader; a line being written
(no newline yet) waits for the next read. A file that shrinks was rotated or truncated and
is read again from its start.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

#: detail keys of a batch line whose values are counts by name: raw2science's cuts,
#: stream2raw's quarantine reasons, distribution's messages per topic, archive's rows per
#: table, raw2science's module failures
COUNTED_DETAILS = ("cut", "quarantine_reasons", "topics", "tables", "module_failures")


def epoch_seconds(text: str) -> float | None:
    """Epoch seconds of an ISO 8601 time (a naive one is taken as UTC); None if unreadable.

    >>> epoch_seconds("1970-01-01T00:01:00+00:00"), epoch_seconds("soon")
    (60.0, None)
    """
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


@dataclass
class Batch:
    """One micro-batch line, the fields the dashboard uses."""

    time: float
    batch_id: int
    rows_in: int
    rows_out: int
    quarantined: int
    duration_s: float
    survey: str
    counts: dict[str, dict[str, int]]


@dataclass
class Restart:
    """One restart line of the supervisor."""

    time: float | None
    restarts: int | None
    reason: str


def parse_line(text: str) -> Batch | Restart:
    """A batch or a restart from one metrics line; ValueError says why a line is neither.

    >>> parse_line('{"event": "restart", "service": "s", "restarts": 2, "reason": "exit 1"}')
    Restart(time=None, restarts=2, reason='exit 1')
    """
    record = json.loads(text)
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    if "event" in record:
        if record["event"] != "restart":
            raise ValueError(f"unknown event {record['event']!r}")
        count = record.get("restarts")
        return Restart(
            time=epoch_seconds(str(record.get("time", ""))),
            restarts=int(count) if isinstance(count, int | float) else None,
            reason=str(record.get("reason", "")),
        )
    moment = epoch_seconds(str(record.get("time", "")))
    if moment is None:
        raise ValueError(f"no readable time in {str(record.get('time'))!r}")
    try:
        detail = record.get("detail") or {}
        counts = {}
        for key in COUNTED_DETAILS:
            values = detail.get(key)
            if isinstance(values, dict):  # JSON keys are strings; counts must be integers
                if not all(type(v) is int for v in values.values()):
                    values = {k: int(v) for k, v in values.items()}
                counts[key] = values
        return Batch(
            time=moment,
            batch_id=int(record["batch_id"]),
            rows_in=int(record["rows_in"]),
            rows_out=int(record["rows_out"]),
            quarantined=int(record.get("quarantined", 0)),
            duration_s=float(record.get("duration_s", 0.0)),
            survey=str(detail.get("survey", "")),
            counts=counts,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise ValueError(f"not a micro-batch line: {err!r}") from None


class LineFile:
    """Complete lines appended to a file since the last read (a rotation starts over)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._identity: tuple[int, int] | None = None
        self._partial = b""

    def new_lines(self) -> Iterator[str]:
        """The lines completed since the previous call (nothing if the file is absent)."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return
        identity = (stat.st_dev, stat.st_ino)
        if identity != self._identity or stat.st_size < self._offset:
            self._identity, self._offset, self._partial = identity, 0, b""
        if stat.st_size == self._offset:
            return
        with self.path.open("rb") as handle:
            handle.seek(self._offset)
            data = handle.read(stat.st_size - self._offset)
        self._offset += len(data)
        *lines, self._partial = (self._partial + data).split(b"\n")
        for line in lines:
            if line.strip():
                yield line.decode("utf-8", errors="replace")


@dataclass
class ServiceActivity:
    """What one service's metrics file has said so far, kept small.

    Totals cover the whole file; ``recent`` keeps the batches of the last
    ``history_s`` seconds for the rates and the plot.
    """

    name: str
    history_s: float
    batches: int = 0
    rows_in: int = 0
    rows_out: int = 0
    quarantined: int = 0
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    last: Batch | None = None
    restarts: int = 0
    last_restart: Restart | None = None
    unreadable: int = 0
    first_unreadable: str = ""
    recent: deque[Batch] = field(default_factory=deque)

    def add(self, item: Batch | Restart) -> None:
        """Take one parsed line into the totals."""
        if isinstance(item, Restart):
            # one line per restart; the supervisor's own number (``restarts``) is shown
            # with the last one, since it may start again from 1 when the service is
            self.restarts += 1
            self.last_restart = item
            return
        self.batches += 1
        self.rows_in += item.rows_in
        self.rows_out += item.rows_out
        self.quarantined += item.quarantined
        for key, values in item.counts.items():
            totals = self.counts.setdefault(key, {})
            for name, n in values.items():
                totals[name] = totals.get(name, 0) + n
        if self.last is None or item.time >= self.last.time:
            self.last = item
        self.recent.append(item)

    def trim(self, now: float) -> None:
        """Forget the batches older than the history kept."""
        while self.recent and self.recent[0].time < now - self.history_s:
            self.recent.popleft()

    def rates(self, now: float, window_s: float) -> dict[str, Any]:
        """Alerts/s in, out and quarantined, and cuts by name, over the last ``window_s``."""
        inside = [b for b in self.recent if b.time > now - window_s]
        cut: Counter[str] = Counter()
        for b in inside:
            cut.update(b.counts.get("cut", {}))
        return {
            "batches": len(inside),
            "in_per_s": sum(b.rows_in for b in inside) / window_s,
            "out_per_s": sum(b.rows_out for b in inside) / window_s,
            "quarantined_per_s": sum(b.quarantined for b in inside) / window_s,
            "cut_per_s": {name: n / window_s for name, n in sorted(cut.items())},
        }

    def series(self, now: float, step_s: float, window_s: float) -> dict[str, list[float]]:
        """Alerts/s in and out every ``step_s`` over the history kept, each averaged over
        the ``window_s`` before it, as in the table (a sum per step would alias with the
        trigger interval)."""
        if not self.recent:
            return {"time": [], "in_per_s": [], "out_per_s": []}
        times = np.fromiter((b.time for b in self.recent), float, len(self.recent))
        order = np.argsort(times, kind="stable")
        times = times[order]
        cum_in = np.concatenate(
            [[0.0], np.cumsum(np.fromiter((b.rows_in for b in self.recent), float)[order])]
        )
        cum_out = np.concatenate(
            [[0.0], np.cumsum(np.fromiter((b.rows_out for b in self.recent), float)[order])]
        )
        first = max(now - self.history_s, times[0] - step_s)
        edges = np.arange(now, first, -step_s)[::-1]
        upper = np.searchsorted(times, edges, side="right")
        lower = np.searchsorted(times, edges - window_s, side="right")
        return {
            "time": edges.tolist(),
            "in_per_s": ((cum_in[upper] - cum_in[lower]) / window_s).tolist(),
            "out_per_s": ((cum_out[upper] - cum_out[lower]) / window_s).tolist(),
        }


class MetricsFeed:
    """Every ``<state_dir>/metrics/*.jsonl``, read incrementally into :class:`ServiceActivity`."""

    def __init__(self, metrics_dir: Path, history_s: float) -> None:
        self.metrics_dir = metrics_dir
        self.history_s = history_s
        self._files: dict[str, LineFile] = {}
        self.services: dict[str, ServiceActivity] = {}

    def poll(self, now: float) -> dict[str, ServiceActivity]:
        """Read what the files gained since the last poll; returns every service seen."""
        if self.metrics_dir.is_dir():
            for entry in sorted(os.scandir(self.metrics_dir), key=lambda e: e.name):
                if entry.name.endswith(".jsonl") and entry.is_file():
                    name = entry.name.removesuffix(".jsonl")
                    if name not in self._files:
                        self._files[name] = LineFile(Path(entry.path))
                        self.services[name] = ServiceActivity(name, self.history_s)
        for name, lines in self._files.items():
            activity = self.services[name]
            for line in lines.new_lines():
                try:
                    activity.add(parse_line(line))
                except ValueError as err:  # JSONDecodeError is a ValueError
                    activity.unreadable += 1
                    if not activity.first_unreadable:
                        activity.first_unreadable = f"{line[:120]} ({err})"
                        log.warning("%s: unreadable metrics line: %s", lines.path, err)
            activity.trim(now)
        return self.services
