"""Keeps the page's numbers fresh in background threads, one per source.

The sources answer at different speeds and fail independently: the PID records and
metrics files are local and fast, the science archive costs a Parquet read when a new file
is committed, Kafka and the REST API are network calls that may time out. Each has its own
loop every ``dashboard.refresh_s``, and a page request only copies the latest results, so a
broker that does not answer slows its own panel and never the page. A loop that fails
keeps going; the page shows the error next to the panel, with the time of the last
good reading.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fink_broker import __version__
from fink_broker.config import Settings
from fink_broker.dashboard.api_client import ApiClient, ApiUnavailable, api_base_url
from fink_broker.dashboard.kafka_view import KafkaView
from fink_broker.dashboard.metrics_feed import MetricsFeed
from fink_broker.dashboard.science_window import ScienceWindow
from fink_broker.dashboard.services_view import ProcessMeter, service_rows

log = logging.getLogger(__name__)

#: points of the rate plot over the history shown
PLOT_POINTS = 120


class Collector:
    """The latest reading of every source, refreshed in the background."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        board = settings.dashboard
        self.refresh_s = max(0.2, float(board.refresh_s))
        history_s = float(board.history_minutes) * 60.0
        self.bucket_s = max(self.refresh_s, history_s / PLOT_POINTS)
        self.window_s = max(1.0, float(board.rate_window_s))
        self.feed = MetricsFeed(Path(settings.paths.state_dir) / "metrics", history_s)
        self.meter = ProcessMeter()
        self.science = ScienceWindow(
            settings.paths.root.removeprefix("file://"),
            window=int(board.latency_alerts),
            latest=int(board.latest),
        )
        self.kafka = KafkaView(settings)
        self.api = ApiClient(api_base_url(settings), float(board.request_timeout_s))
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._parts: dict[str, dict[str, Any]] = {
            name: {"data": None, "updated": None, "error": ""}
            for name in ("services", "science", "kafka", "api")
        }

    # -- sources

    def _services(self) -> dict[str, Any]:
        now = time.time()
        activities = self.feed.poll(now)
        return {
            "rows": service_rows(self.settings, activities, self.meter, now),
            "bucket_s": self.bucket_s,
            "window_s": self.window_s,
            "series": {
                name: activity.series(now, self.bucket_s, self.window_s)
                for name, activity in activities.items()
                if activity.recent
            },
        }

    def _api(self) -> dict[str, Any]:
        try:
            self.api.probe()
        except ApiUnavailable as err:
            return {"url": self.api.base_url, "ok": False, "message": str(err)}
        return {"url": self.api.base_url, "ok": True, "message": ""}

    # -- loops

    def refresh(self, name: str) -> None:
        """Read one source now and keep the result (or the error) for the page."""
        source: Callable[[], Any] = {
            "services": self._services,
            "science": self.science.read,
            "kafka": self.kafka.read,
            "api": self._api,
        }[name]
        try:
            data = source()
        except Exception as err:  # any failure of a source is shown on its panel
            log.exception("dashboard: reading %s failed", name)
            with self._lock:
                self._parts[name]["error"] = f"{type(err).__name__}: {err}"
            return
        with self._lock:
            self._parts[name] = {"data": data, "updated": time.time(), "error": ""}

    def _loop(self, name: str) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            self.refresh(name)
            self._stop.wait(max(0.0, self.refresh_s - (time.monotonic() - started)))

    def start(self) -> None:
        """Start one daemon thread per source (idempotent)."""
        if self._threads:
            return
        for name in self._parts:
            thread = threading.Thread(target=self._loop, args=(name,), daemon=True)
            thread.name = f"dashboard-{name}"
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the loops to end and wait for them (a request in flight ends at its timeout)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []

    def snapshot(self) -> dict[str, Any]:
        """Everything the page shows, as plain JSON values."""
        with self._lock:
            parts = copy.deepcopy(self._parts)
        settings = self.settings
        return {
            "broker": {
                "version": __version__,
                "root": settings.paths.root,
                "state_dir": str(Path(settings.paths.state_dir).resolve()),
                "refresh_s": self.refresh_s,
                "rate_window_s": self.window_s,
                "latency_alerts": int(settings.dashboard.latency_alerts),
                "now": time.time(),
            },
            **parts,
        }
