"""A live stream2raw (its own `fink` process, supervised) through a Kafka outage: while the
broker is down the service waits, it does not exit; once the broker is back, the alerts
sent after the outage are archived, and none before it is lost or duplicated."""

from __future__ import annotations

import os
import signal
import threading
import time
from types import SimpleNamespace

import pytest

from fink_broker.config import dump_toml
from fink_broker.infra import kafka_local
from fink_broker.kafka_clients import ensure_topics
from fink_broker.lake import Lake
from fink_broker.services.streaming import committed_batches, restart_events
from fink_broker.simulator.replay import replay
from tests.integration.test_stream2raw import _fink, settings_for

pytestmark = pytest.mark.integration


def _archived(settings) -> int:
    """Alerts archived so far, from the micro-batch lines of the metrics file."""
    return sum(x.get("rows_out", 0) for x in committed_batches(settings, "stream2raw").values())


def _wait(predicate, process, lines, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert process.poll() is None, f"stream2raw exited while waiting for {what}: {lines}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {lines[-20:]}"
        time.sleep(0.5)


def test_stream2raw_waits_through_a_kafka_outage(spark, fresh_kafka_settings, datasim, tmp_path):
    kafka_local.start_kafka(fresh_kafka_settings)
    broker = SimpleNamespace(bootstrap=kafka_local.local_bootstrap(fresh_kafka_settings))
    topic = "it_ztf_outage"
    settings = settings_for(broker, tmp_path / "run", "ztf", topic, trigger="1 second")
    config = tmp_path / "run" / "fink.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(dump_toml(settings))
    ensure_topics(settings.kafka, [topic], 2)
    process = _fink(config, "start", "stream2raw", "--foreground")
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True).start()
    try:
        assert replay(settings, survey="ztf", folder=datasim / "ztf", topic=topic).ok
        _wait(lambda: _archived(settings) == 50, process, lines, 240, "the first 50 alerts")

        assert kafka_local.stop_kafka(fresh_kafka_settings, timeout=30)
        time.sleep(20)  # several triggers without a broker
        assert process.poll() is None, f"stream2raw exited during the outage: {lines[-20:]}"

        kafka_local.start_kafka(fresh_kafka_settings)  # same port, same log folder
        assert replay(settings, survey="ztf", folder=datasim / "ztf", topic=topic, repeat=2).ok
        # the second replay sends the 50 alerts again, then 50 copies with fresh ids
        _wait(lambda: _archived(settings) == 150, process, lines, 300, "the alerts after")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(60)
    raw = spark.read.parquet(Lake(settings.paths.root, "ztf").raw)
    assert raw.count() == 150
    assert raw.select("candid").distinct().count() == 100  # 50 delivered twice, kept twice
    restarts = restart_events(settings, "stream2raw")
    print(f"restarts during the outage: {len(restarts)}", [r["reason"] for r in restarts])
