"""The dashboard's web application without Kafka, HBase or a JVM: every panel says what it
lacks, and the page refreshes in the background (the live pipeline, the REST API and
HBase are in tests/integration/test_dashboard_browser.py)."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

from fastapi.testclient import TestClient

from fink_broker.config import Settings, load_settings
from fink_broker.dashboard.app import create_app
from fink_broker.dashboard.collector import Collector


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def settings_for(tmp_path: Path, **overrides) -> Settings:
    """Nothing listens on the ports these settings name (bound once, then released)."""
    return load_settings(
        None,
        env={},
        overrides={
            "paths.root": str(tmp_path / "lake"),
            "paths.state_dir": str(tmp_path / "state"),
            "kafka.bootstrap_servers": f"127.0.0.1:{free_port()}",
            "hbase.thrift_port": free_port(),
            "hbase.timeout_s": 2.0,
            "api.port": free_port(),
            "dashboard.request_timeout_s": 1.0,
            **overrides,
        },
    )


def refreshed(collector: Collector) -> dict:
    for part in ("services", "science", "kafka", "api"):
        collector.refresh(part)
    return collector.snapshot()


def test_the_page_and_plotly_are_served_from_the_package(tmp_path: Path) -> None:
    client = TestClient(create_app(Collector(settings_for(tmp_path)), start=False))
    page = client.get("/")
    assert page.status_code == 200
    assert '<script src="/static/plotly.min.js">' in page.text
    assert '<script src="/static/dashboard.js">' in page.text
    plotly = client.get("/static/plotly.min.js")
    assert plotly.status_code == 200 and plotly.headers["content-type"].startswith(
        "text/javascript"
    )
    assert b"plotly.js v" in plotly.content[:200] and len(plotly.content) > 1_000_000
    assert "Plotly.react" in client.get("/static/dashboard.js").text
    assert client.get("/static/dashboard.css").status_code == 200
    assert client.get("/static/..%2Fapp.py").status_code == 404
    assert client.get("/static/nothing.js").status_code == 404


def test_every_panel_says_what_it_lacks(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    client = TestClient(create_app(Collector(settings), start=False))
    started = time.monotonic()
    snapshot = refreshed(client.app.state.collector)
    assert time.monotonic() - started < 15, "an absent broker must not hold the page"
    assert [r["name"] for r in snapshot["services"]["data"]["rows"]][:2] == [
        "stream2raw",
        "raw2science",
    ]
    assert not any(r["up"] for r in snapshot["services"]["data"]["rows"])
    kafka = snapshot["kafka"]["data"]
    assert "no stream2raw checkpoint" in kafka["input"]["note"]
    assert "did not answer" in kafka["output"]["note"]
    assert snapshot["science"]["data"]["latest"] == []
    api = snapshot["api"]["data"]
    assert not api["ok"] and f"no API at http://127.0.0.1:{settings.api.port}" in api["message"]
    curve = client.get("/api/lightcurve", params={"objectId": "ZTF20aaelulu"})
    assert curve.status_code == 503 and "no API at" in curve.json()["detail"]
    cutout = client.get("/api/cutout", params={"alertId": "123", "kind": "Science"})
    assert cutout.status_code == 503 and "no API at" in cutout.json()["detail"]
    assert client.get("/api/cutout", params={"alertId": "12ab"}).status_code == 422
    assert client.get("/api/cutout", params={"alertId": "1", "kind": "Other"}).status_code == 422


def test_the_loops_run_and_stop_with_the_app(tmp_path: Path) -> None:
    collector = Collector(settings_for(tmp_path, **{"dashboard.refresh_s": 0.2}))
    with TestClient(create_app(collector)) as client:
        deadline = time.monotonic() + 15
        while client.get("/api/snapshot").json()["services"]["updated"] is None:
            assert time.monotonic() < deadline, "the services loop never ran"
            time.sleep(0.1)
        first = client.get("/api/snapshot").json()["services"]["updated"]
        time.sleep(0.6)
        assert client.get("/api/snapshot").json()["services"]["updated"] > first
    assert all(not t.is_alive() for t in threading.enumerate() if t.name == "dashboard-services")
