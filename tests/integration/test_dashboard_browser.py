"""The dashboard in a real browser while the pipeline runs on the real ZTF alerts.

A real Kafka broker and HBase (the session fixtures), stream2raw, raw2science and archive
live in the shared Spark session, the simulator in its own process, and the dashboard and
the REST API started as `fink start dashboard` / `fink start api` do. Headless Chromium
(Debian's, driven by Playwright) loads the page and reads it twice: the rates and the
latest alerts must be there and must change between the two reads. Before the API starts
the panels that need it say so; once it runs, the selected object's light curve is plotted
and the cutouts load. The screenshot is kept as a CI artifact.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from fink_broker.config import Settings, dump_toml, load_settings
from fink_broker.infra import processes
from fink_broker.kafka_clients import connection_config
from fink_broker.services import archive, distribution, raw2science, stream2raw
from fink_broker.simulator.replay import replay
from fink_broker.surveys.names import ZTF_NAME
from tests.conftest import base_overrides
from tests.integration.conftest import free_ports

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
#: the flags that let Debian's Chromium run as root on a machine without internet
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LIVE_TRIGGER = "1 second"
SERVICES = (stream2raw, raw2science, archive)


def wait_for(what: str, check: Callable[[], object], timeout: float = 90.0) -> object:
    """Poll ``check`` until it returns something true; fail naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)


def number(text: str) -> float | None:
    """A number as the page prints it (``1,234.5``), None for a dash."""
    cleaned = text.replace(",", "").strip()
    return float(cleaned) if re.fullmatch(r"-?\d+(\.\d+)?", cleaned) else None


def fink(config: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fink_broker.cli.main", *args, "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def published(settings: Settings, topic: str) -> int:
    """Messages of ``topic``, read independently of the dashboard (high watermarks)."""
    consumer = Consumer({**connection_config(settings.kafka), "group.id": "dashboard-check"})
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        return sum(
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in meta.partitions
        )
    finally:
        consumer.close()


@pytest.fixture
def pipeline(spark, local_kafka, local_hbase, datasim, tmp_path) -> Iterator[dict]:
    """The pipeline's archives made by one bounded pass over 20 alerts, then stream2raw,
    raw2science and archive running live on them, registered as services."""
    dashboard_port, api_port = free_ports(2)
    topic = "it_dashboard_live"
    settings = load_settings(
        None,
        env={},
        overrides={
            **base_overrides(tmp_path),
            "kafka.bootstrap_servers": local_kafka.bootstrap,
            "stream2raw.survey": ZTF_NAME,
            "stream2raw.topic": topic,
            "stream2raw.trigger": "availableNow",
            "raw2science.trigger": "availableNow",
            "distribution.trigger": "availableNow",
            "distribution.topic_prefix": "itdash_",
            "archive.trigger": "availableNow",
            "dashboard.port": dashboard_port,
            "dashboard.refresh_s": 1.0,
            "dashboard.rate_window_s": 20.0,
            "api.port": api_port,
        },
    )
    settings.hbase = dataclasses.replace(local_hbase.hbase, namespace="itdashboard")
    config = tmp_path / "fink.toml"
    config.write_text(dump_toml(settings))
    folder = datasim / ZTF_NAME
    assert replay(settings, survey=ZTF_NAME, folder=folder, topic=topic, nalerts=20).ok
    archive.create_tables(settings, ZTF_NAME)
    for service in (stream2raw, raw2science, distribution, archive):
        query = service.start(settings, spark)
        query.awaitTermination()
        assert query.exception() is None, service.__name__
    for service in SERVICES:
        getattr(settings, service.SERVICE).trigger = LIVE_TRIGGER
    queries = []
    try:
        for service in SERVICES:
            queries.append(service.start(settings, spark))
            processes.register_foreground(
                service.SERVICE, settings=settings, topics=[topic] if service is stream2raw else []
            )
        # the survey's stream, in its own process: 4 alerts/s of fresh copies for ~60 s
        simulator = subprocess.Popen(
            [
                sys.executable,
                *("-m", "fink_broker.cli.main", "simulator", "-c", str(config)),
                *("--survey", ZTF_NAME, "--datasim", str(folder), "--topic", topic),
                *("--nalerts", "240", "--repeat", "5", "--rate", "4"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        yield {"settings": settings, "config": config, "topic": topic}
    finally:
        if "simulator" in locals():
            simulator.kill()
            simulator.wait(10)
        for query in queries:
            query.stop()
        for service in SERVICES:
            processes.unregister(settings, service.SERVICE)
        for name in ("dashboard", "api"):
            processes.stop(settings, name, timeout=20)


def launch(playwright, profile: str):
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: scripts/setup.sh installs Debian's chromium"
    return playwright.chromium.launch_persistent_context(
        profile,
        executable_path=str(CHROMIUM),
        headless=True,
        args=CHROMIUM_ARGS,
        viewport={"width": 1400, "height": 1000},
    )


def read_page(page) -> dict:
    """What an operator reads: stream2raw's and raw2science's rates and totals, the alerts."""
    service = '#services tr[data-service="{}"] .{}'
    out = {
        name: {
            cell: number(page.locator(service.format(name, cell)).inner_text())
            for cell in ("in-rate", "out-rate", "total-in", "total-out")
        }
        for name in ("stream2raw", "raw2science")
    }
    out["states"] = {
        name: page.locator(service.format(name, "state")).inner_text()
        for name in ("stream2raw", "raw2science", "archive", "dashboard")
    }
    out["latest"] = page.locator("#latest tbody tr[data-alert-id]").evaluate_all(
        "rows => rows.map(r => r.dataset.alertId)"
    )
    return out


def test_the_dashboard_shows_the_live_pipeline(pipeline, artifacts) -> None:
    from playwright.sync_api import sync_playwright

    settings, config = pipeline["settings"], pipeline["config"]
    started = fink(config, "start", "dashboard")
    assert started.returncode == 0, started.stderr
    url = f"http://127.0.0.1:{settings.dashboard.port}/"
    assert f"dashboard: {url}" in started.stdout
    shown = fink(config, "show")
    assert re.search(rf"dashboard .*127\.0\.0\.1:{settings.dashboard.port}", shown.stdout)

    errors: list[str] = []
    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
        browser = launch(playwright, profile)
        page = browser.new_page()
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.goto(url)

        def flowing() -> dict | None:
            read = read_page(page)
            rate = read["stream2raw"]["in-rate"]
            return read if rate and read["latest"] else None

        first = wait_for("stream2raw's rate and the latest alerts on the page", flowing)
        assert first["states"] == {
            "stream2raw": "up",
            "raw2science": "up",
            "archive": "up",
            "dashboard": "up",
        }
        assert first["stream2raw"]["total-in"] >= 20  # the bounded pass, and more since

        def changed() -> dict | None:
            read = read_page(page)
            moved = read["stream2raw"]["total-in"] > first["stream2raw"]["total-in"]
            newer = read["latest"] and read["latest"] != first["latest"]
            return read if moved and newer and read["raw2science"]["in-rate"] else None

        second = wait_for("new micro-batches and newer alerts on the page", changed)
        assert second["stream2raw"] != first["stream2raw"]
        assert second["raw2science"]["total-in"] >= first["raw2science"]["total-in"]

        # the lag of the input topic, and the output topics of the bounded distribution
        lag = page.locator(f'#lag tr[data-topic="{pipeline["topic"]}"] .lag')
        assert number(wait_for("the input topic's lag", lag.inner_text)) is not None
        topic = f"{settings.distribution.topic_prefix}sso_candidates_{ZTF_NAME}"
        cell = page.locator(f'#topics tr[data-topic="{topic}"] .published')
        assert number(cell.inner_text()) == published(settings, topic)
        p50 = page.locator('#latency tr[data-stage="total"] .p50').first
        assert (number(p50.inner_text()) or 0) > 0

        # without the REST API, the panels that need it say so
        assert "no API at" in page.locator("#api-note").inner_text()
        api = fink(config, "start", "api")
        assert api.returncode == 0, api.stderr
        wait_for("the API panel to clear", lambda: not page.locator("#api-note").inner_text())
        plot = page.locator("#lightcurve-plot")
        wait_for("a light curve", lambda: int(plot.get_attribute("data-points") or 0) > 0)
        wait_for(
            "a science cutout",
            lambda: page.locator("#latest img").first.evaluate(
                "img => img.complete && img.naturalWidth > 0"
            ),
        )
        page.screenshot(path=str(artifacts / "dashboard.png"), full_page=True)
        browser.close()
    assert errors == []
    assert (artifacts / "dashboard.png").stat().st_size > 10_000
    stopped = fink(config, "stop", "dashboard")
    assert stopped.returncode == 0 and "stopped dashboard" in stopped.stdout
    assert processes.get(settings, "dashboard") is None
    if os.environ.get("CI"):
        print(f"dashboard screenshot: {artifacts / 'dashboard.png'}")
