"""``fink start dashboard``: serve the operator's page with uvicorn until SIGTERM or Ctrl-C."""

from __future__ import annotations

import logging
import sys
import time
import urllib.error
import urllib.request

from fink_broker.config import Settings
from fink_broker.infra import processes

log = logging.getLogger(__name__)


def dashboard_url(settings: Settings) -> str:
    """Where a browser on this machine opens the page.

    >>> from fink_broker.config import load_settings
    >>> dashboard_url(load_settings(None, env={}, overrides={"dashboard.port": 8123}))
    'http://127.0.0.1:8123/'
    """
    host = settings.dashboard.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return f"http://{host}:{settings.dashboard.port}/"


def announce(settings: Settings, record: processes.ServiceRecord, *, timeout: float = 60.0) -> int:
    """Wait until a dashboard started in the background answers, then print its URL.

    Returns the exit code of ``fink start dashboard``: 1, with the end of its log, when
    the process ended (a port in use, a bad option) or did not answer within ``timeout``.
    """
    url = dashboard_url(settings)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not processes.is_running(record):
            tail = processes.log_tail(record.log_path) if record.log_path else ""
            print(f"fink: the dashboard stopped at start-up\n{tail}", file=sys.stderr)
            return 1
        try:
            with urllib.request.urlopen(f"{url}api/snapshot", timeout=2.0):
                print(f"dashboard: {url}")
                return 0
        except (urllib.error.URLError, OSError):
            time.sleep(0.3)
    print(f"fink: the dashboard did not answer on {url} within {timeout:.0f} s", file=sys.stderr)
    return 1


def serve(settings: Settings) -> None:
    """Run the dashboard on ``dashboard.host:dashboard.port`` (blocks).

    uvicorn stops on SIGTERM after the requests in flight, and the collector's loops end
    with the application, so `fink stop dashboard` is graceful.
    """
    import uvicorn

    from fink_broker.dashboard.app import create_app
    from fink_broker.dashboard.collector import Collector

    collector = Collector(settings)
    app = create_app(collector)
    log.info(
        "Fink dashboard on %s (data root %s, state %s, REST API %s)",
        dashboard_url(settings),
        settings.paths.root,
        settings.paths.state_dir,
        collector.api.base_url,
    )
    uvicorn.run(
        app,
        host=settings.dashboard.host,
        port=settings.dashboard.port,
        log_level="warning",
    )
