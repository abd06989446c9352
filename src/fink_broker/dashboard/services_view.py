"""Each service's state for the page: up or down, uptime, CPU, restarts, its micro-batches.

Up or down comes from Fink's own PID records (:mod:`fink_broker.infra.processes`, what
``fink show`` reads); what a service did comes from its metrics file
(:mod:`fink_broker.dashboard.metrics_feed`). The pipeline's services are always listed, so
one that never started, or stopped, reads "down" with its last micro-batch, instead of
vanishing from the page.

CPU is measured between two refreshes (psutil keeps the previous reading per process), so
a refresh never sleeps to measure it, as ``fink show`` does.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import psutil

from fink_broker.config import Settings
from fink_broker.dashboard.metrics_feed import ServiceActivity
from fink_broker.infra import processes

#: the streaming services, listed even when they do not run
PIPELINE = ("stream2raw", "raw2science", "distribution", "archive")
#: the service that runs every stage of ``PIPELINE`` in one query (`fink start pipeline`)
ONE_PASS = "pipeline"


class ProcessMeter:
    """CPU (100 = one core) and memory of a process and its children, between two calls."""

    def __init__(self) -> None:
        self._procs: dict[int, psutil.Process] = {}

    def _cached(self, proc: psutil.Process) -> psutil.Process:
        known = self._procs.get(proc.pid)
        if known is not None and known.create_time() == proc.create_time():
            return known
        self._procs[proc.pid] = proc
        proc.cpu_percent(None)  # the first reading only starts the measure
        return proc

    def measure(self, pid: int) -> dict[str, float | int]:
        """``cpu_percent``, ``rss_mib`` and ``processes`` of ``pid``'s family."""
        cpu = rss = count = 0.0
        try:
            root = psutil.Process(pid)
            family = [root, *root.children(recursive=True)]
        except psutil.Error:
            return {"cpu_percent": 0.0, "rss_mib": 0.0, "processes": 0}
        for member in family:
            with contextlib.suppress(psutil.Error):
                proc = self._cached(member)
                cpu += proc.cpu_percent(None)
                rss += proc.memory_info().rss
                count += 1
        alive = {p.pid for p in family}
        for pid_gone in [p for p in self._procs if p not in alive and p != pid]:
            if not psutil.pid_exists(pid_gone):
                del self._procs[pid_gone]
        return {"cpu_percent": round(cpu, 1), "rss_mib": round(rss / 2**20, 1), "processes": count}


def _activity(activity: ServiceActivity | None, now: float, window_s: float) -> dict[str, Any]:
    if activity is None:
        return {"batches": 0, "restarts": 0, "last_batch": None, "rates": None, "totals": None}
    last = activity.last
    return {
        "batches": activity.batches,
        "restarts": activity.restarts,
        "last_restart": None
        if activity.last_restart is None
        else {
            "time": activity.last_restart.time,
            "restarts": activity.last_restart.restarts,
            "reason": activity.last_restart.reason,
        },
        "last_batch": None
        if last is None
        else {
            "time": last.time,
            "age_s": round(now - last.time, 1),
            "batch_id": last.batch_id,
            "rows_in": last.rows_in,
            "rows_out": last.rows_out,
            "duration_s": last.duration_s,
            "survey": last.survey,
        },
        "rates": activity.rates(now, window_s),
        "totals": {
            "rows_in": activity.rows_in,
            "rows_out": activity.rows_out,
            "quarantined": activity.quarantined,
            **{key: dict(sorted(values.items())) for key, values in activity.counts.items()},
        },
        "unreadable": activity.unreadable,
        "first_unreadable": activity.first_unreadable,
    }


def service_rows(
    settings: Settings,
    activities: dict[str, ServiceActivity],
    meter: ProcessMeter,
    now: float | None = None,
) -> list[dict[str, Any]]:
    """One row per service: the pipeline's, the running ones, those with a metrics file."""
    now = time.time() if now is None else now
    window = float(settings.dashboard.rate_window_s)
    records = {r.name: r for r in processes.running(settings)}
    names = list(dict.fromkeys([*PIPELINE, *sorted(records), *sorted(activities)]))
    rows = []
    for name in names:
        record = records.get(name)
        row: dict[str, Any] = {"name": name, "up": record is not None}
        if record is not None:
            row.update(
                pid=record.pid,
                started_at=record.started_at,
                uptime_s=round(now - record.create_time, 1),
                ports=record.ports,
                topics=record.topics,
                **meter.measure(record.pid),
            )
        elif name in PIPELINE and ONE_PASS in records:
            # `fink start pipeline` runs this stage in its own process: up, with the
            # pipeline's PID and uptime; its CPU and memory are on the pipeline's row
            one_pass = records[ONE_PASS]
            row.update(
                up=True,
                in_pipeline=True,
                pid=one_pass.pid,
                started_at=one_pass.started_at,
                uptime_s=round(now - one_pass.create_time, 1),
            )
        row.update(_activity(activities.get(name), now, window))
        rows.append(row)
    return rows
