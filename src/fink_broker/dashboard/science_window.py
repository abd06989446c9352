"""The newest alerts of the science archives: latency percentiles and the latest alerts.

Every science alert carries its provenance times (``kafka_timestamp``: when the survey, or
the simulator, published it; ``fink_ingest_time``: when stream2raw decoded it;
``processing_start``/``processing_end``: when raw2science took it and when its modules
finished), so the latency of each alert is a difference of two columns already on disk.
The dashboard reads these four columns of the newest committed files only (the sink log
says which files are committed, :mod:`fink_broker.dashboard.sink_log`), once per file: a
committed file never changes, so it is kept until newer files push it out of the window.

Latencies are computed as whole columns (numpy), never per alert in Python. The latest
alerts are few (``dashboard.latest``); their canonical values (objectId, alertId, mjd,
position, band, magnitude or flux) come from the survey's own declarative table, the one
the engine compiles for Spark, applied to those rows in Python.

The times come from different clocks when the survey publishes from elsewhere
(``kafka_timestamp`` is the producer's clock): the stages inside Fink (ingest to science)
are always on the broker's clock.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fink_broker.dashboard.sink_log import CommittedFile, newest_files
from fink_broker.lake import Lake, is_local
from fink_broker.surveys import SURVEYS
from fink_broker.surveys.fields import canonical_frame

log = logging.getLogger(__name__)

#: provenance times, in the order of the pipeline
TIMES = ("kafka_timestamp", "fink_ingest_time", "processing_start", "processing_end")
#: latency name -> (from, to): the whole path and each stage of it
STAGES = {
    "total": ("kafka_timestamp", "processing_end"),
    "kafka_to_raw": ("kafka_timestamp", "fink_ingest_time"),
    "raw_to_science": ("fink_ingest_time", "processing_start"),
    "modules": ("processing_start", "processing_end"),
}
PERCENTILES = (50, 95, 99)
#: canonical values shown for each of the latest alerts
SUMMARY = ("objectId", "alertId", "mjd", "ra", "dec", "band", "mag", "magerr", "flux", "fluxerr")
#: module outputs shown when the archive has them
EXTRA = ("finkclass",)
#: newest committed files looked at per survey and refresh
MAX_FILES = 200
_UNIT_S = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}


def seconds(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Epoch seconds of a timestamp column as float64, NaN where null (any unit or zone).

    >>> seconds(pa.array([1_500_000, None], pa.timestamp("us")))
    array([1.5, nan])
    """
    raw = pc.cast(column, pa.int64())
    if isinstance(raw, pa.ChunkedArray):
        raw = raw.combine_chunks()
    values = raw.to_numpy(zero_copy_only=False).astype(np.float64)
    if raw.null_count:
        values[np.asarray(raw.is_null())] = np.nan
    return values / _UNIT_S[column.type.unit]


def percentiles(latencies: np.ndarray) -> dict[str, float | int | None]:
    """p50/p95/p99 and the count of the finite values, in seconds (None when empty).

    >>> percentiles(np.array([1.0, 2.0, np.nan, 3.0]))["p50"], percentiles(np.array([]))["n"]
    (2.0, 0)
    """
    finite = latencies[np.isfinite(latencies)]
    if not len(finite):
        return {"n": 0, **{f"p{p}": None for p in PERCENTILES}, "max": None}
    values = np.percentile(finite, PERCENTILES)
    return {
        "n": len(finite),
        **{f"p{p}": float(v) for p, v in zip(PERCENTILES, values, strict=True)},
        "max": float(finite.max()),
    }


def _readable_columns(schema: pa.Schema) -> list[str]:
    """Top-level columns worth reading for a summary: no histories, no image cutouts."""

    def heavy(kind: pa.DataType) -> bool:
        if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
            return True
        if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_map(kind):
            return True
        return pa.types.is_struct(kind) and any(heavy(f.type) for f in kind)

    return [f.name for f in schema if not heavy(f.type)]


@dataclass
class FileTimes:
    """The provenance times of one committed file (epoch seconds per column)."""

    path: str
    rows: int
    times: dict[str, np.ndarray]
    #: its newest alerts for the page, made once, when first needed
    summaries: list[dict[str, Any]] | None = None


class ScienceWindow:
    """The newest alerts of each survey's science archive under a local data root."""

    def __init__(self, root: str, *, window: int, latest: int) -> None:
        self.root = root
        self.window = window
        self.latest = latest
        self._cache: OrderedDict[str, FileTimes] = OrderedDict()
        self.errors: dict[str, str] = {}

    def _times(self, entry: CommittedFile) -> FileTimes | None:
        cached = self._cache.get(entry.path)
        if cached is not None:
            return cached
        try:
            handle = pq.ParquetFile(entry.path)
            present = [c for c in TIMES if c in handle.schema_arrow.names]
            table = handle.read(columns=present)
        except (OSError, pa.ArrowException) as err:  # removed by an operator, or unreadable
            self.errors[entry.path] = str(err)
            log.warning("dashboard: cannot read %s: %s", entry.path, err)
            return None
        times = {c: seconds(table.column(c)) for c in present}
        found = FileTimes(entry.path, table.num_rows, times)
        self._cache[entry.path] = found
        return found

    def _newest(self, survey: str) -> list[FileTimes]:
        """The newest files of a survey holding at least ``window`` alerts, and ``latest``
        (or all of them)."""
        folder = Lake(self.root, survey).science
        out, rows = [], 0
        for entry in newest_files(folder, MAX_FILES):
            found = self._times(entry)
            if found is None:
                continue
            out.append(found)
            rows += found.rows
            if rows >= max(self.window, self.latest):
                break
        return out

    def read(self) -> dict[str, Any]:
        """Latency percentiles per survey, and the latest alerts of all surveys, for the page."""
        if not is_local(self.root):
            note = f"the science archive on {self.root} is not read by the dashboard"
            return {"latency": {}, "latest": [], "note": note}
        latency: dict[str, Any] = {}
        candidates: list[tuple[float, str, FileTimes]] = []
        kept: set[str] = set()
        for survey in SURVEYS:
            files = self._newest(survey)
            if not files:
                continue
            kept.update(f.path for f in files)
            latency[survey] = self._latency(files)
            for found in files:
                end = found.times.get("processing_end")
                if end is not None and len(end) and np.isfinite(end).any():
                    candidates.append((float(np.nanmax(end)), survey, found))
        for path in [p for p in self._cache if p not in kept]:
            del self._cache[path]
        candidates.sort(key=lambda c: c[0], reverse=True)
        return {"latency": latency, "latest": self._latest(candidates), "note": ""}

    def _latency(self, files: list[FileTimes]) -> dict[str, Any]:
        times = {
            name: np.concatenate([f.times.get(name, np.full(f.rows, np.nan)) for f in files])[
                : self.window
            ]
            for name in TIMES
        }
        stages = {
            name: percentiles(times[end] - times[start]) for name, (start, end) in STAGES.items()
        }
        ends = times["processing_end"]
        finite = ends[np.isfinite(ends)]
        return {
            "alerts": len(ends),
            "files": len(files),
            "from": float(finite.min()) if len(finite) else None,
            "to": float(finite.max()) if len(finite) else None,
            "stages": stages,
        }

    def _latest(self, candidates: list[tuple[float, str, FileTimes]]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for newest, survey, found in candidates:  # newest file first: few files are opened
            if len(rows) >= self.latest:
                ends = sorted((r["processing_end"] or 0.0 for r in rows), reverse=True)
                if newest <= ends[self.latest - 1]:
                    break  # no alert of this file, nor of older ones, would make the list
            try:
                if found.summaries is None:
                    found.summaries = self._summaries(survey, found, self.latest)
                rows += found.summaries
            except (OSError, pa.ArrowException, ValueError) as err:
                self.errors[found.path] = str(err)
                log.warning("dashboard: cannot summarise %s: %s", found.path, err)
        rows.sort(key=lambda r: r["processing_end"] or 0.0, reverse=True)
        return rows[: self.latest]

    def _summaries(self, survey: str, found: FileTimes, count: int) -> list[dict[str, Any]]:
        """The ``count`` newest alerts of one file, as plain values for JSON."""
        handle = pq.ParquetFile(found.path)
        ends = found.times.get("processing_end", np.zeros(found.rows))
        order = np.argsort(-np.nan_to_num(ends, nan=-np.inf), kind="stable")[:count]
        table = handle.read(columns=_readable_columns(handle.schema_arrow))
        table = table.take(pa.array(order))
        records = table.to_pylist()
        canonical = canonical_frame(records, survey, SUMMARY)
        out = []
        for i, record in enumerate(records):
            row: dict[str, Any] = {"survey": survey}
            for name in SUMMARY:
                value = canonical[name].iloc[i]
                row[name] = None if pd.isna(value) else _plain(value)
            row["alertId"] = None if row["alertId"] is None else str(row["alertId"])
            row["objectId"] = None if row["objectId"] is None else str(row["objectId"])
            for name in EXTRA:
                row[name] = record.get(name)
            row["processing_end"] = _finite_or_none(ends[order[i]])
            row["kafka_timestamp"] = _finite_or_none(
                found.times.get("kafka_timestamp", np.full(found.rows, np.nan))[order[i]]
            )
            out.append(row)
        return out


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _finite_or_none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None
