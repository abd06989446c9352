"""stream2raw against a real local Kafka broker and a real Spark session.

The simulator publishes real alerts as the surveys do; stream2raw drains the topic with an
``availableNow`` trigger (in the shared session) or runs as its own `fink` process when the
test needs to kill it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from fink_broker.config import Settings, dump_toml, load_settings
from fink_broker.kafka_clients import ensure_topics
from fink_broker.lake import Lake
from fink_broker.services import stream2raw
from fink_broker.simulator.replay import Injection, replay
from fink_broker.surveys import get_adapter
from fink_broker.surveys.base import iter_alert_files, read_alert_file

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def settings_for(local_kafka, tmp: Path, survey: str, topic: str, **stream2raw) -> Settings:
    """Settings of one test: the live broker, a fresh data root, the given stream2raw options."""
    return load_settings(
        None,
        env={},
        overrides={
            "paths.root": str(tmp / "lake"),
            "paths.state_dir": str(tmp / "state"),
            "paths.jar_cache": str(REPO / "jvm-cache"),
            "kafka.bootstrap_servers": local_kafka.bootstrap,
            "stream2raw.survey": survey,
            "stream2raw.topic": topic,
            "stream2raw.trigger": "availableNow",
            "stream2raw.max_offsets_per_trigger": 200,
            **{f"stream2raw.{k}": v for k, v in stream2raw.items()},
        },
    )


def drain(spark, settings: Settings) -> None:
    """Run stream2raw in the shared session until the topic is drained."""
    query = stream2raw.start(settings, spark)
    query.awaitTermination()
    assert query.exception() is None


def utc_night(mjd_utc: float) -> str:
    """Independent night computation: UTC date of an MJD (no Spark involved)."""
    return (dt.datetime(1858, 11, 17) + dt.timedelta(days=mjd_utc)).strftime("%Y%m%d")


def expected_alerts(datasim: Path, survey: str) -> dict[object, str]:
    """alert id -> night, read directly from the alert files."""
    out = {}
    for path in iter_alert_files(datasim / survey):
        record, _ = read_alert_file(path)
        if survey == "ztf":
            out[record["candid"]] = utc_night(record["candidate"]["jd"] - 2400000.5)
        else:
            mjd_tai = record["diaSource"]["midpointMjdTai"]
            out[record["diaSourceId"]] = utc_night(mjd_tai - 37.0 / 86400)
    return out


def test_150_real_alerts_archived_once_each_in_their_night(spark, local_kafka, datasim, tmp_path):
    total = 0
    for survey in ("ztf", "rubin"):
        topic = f"it_{survey}_150"
        settings = settings_for(local_kafka, tmp_path, survey, topic)
        summary = replay(settings, survey=survey, folder=datasim / survey, topic=topic, nbatches=3)
        assert summary.ok
        drain(spark, settings)
        adapter = get_adapter(survey)
        raw = spark.read.parquet(Lake(settings.paths.root, survey).raw)
        rows = raw.select(adapter.alert_id, "night").collect()
        expected = expected_alerts(datasim, survey)
        assert len(rows) == len(expected)
        assert {r[0]: r[1] for r in rows} == expected
        total += len(rows)
    assert total == 150


def test_bad_messages_are_quarantined_and_good_alerts_archived(
    spark, local_kafka, datasim, tmp_path
):
    injected = {"garbage": 4, "truncated": 3, "unknown_schema": 5}
    settings = settings_for(local_kafka, tmp_path, "rubin", "it_rubin_bad")
    summary = replay(
        settings,
        survey="rubin",
        folder=datasim / "rubin",
        topic="it_rubin_bad",
        inject=[Injection(kind, n) for kind, n in injected.items()],
        seed=7,
    )
    assert summary.bad == injected
    drain(spark, settings)
    lake = Lake(settings.paths.root, "rubin")
    assert spark.read.parquet(lake.raw).count() == 100
    quarantine = spark.read.parquet(lake.quarantine)
    assert quarantine.count() == sum(injected.values())
    errors = [r["error"] for r in quarantine.collect()]
    assert sum("unknown schema 9999" in e for e in errors) == injected["unknown_schema"]
    # every quarantined message keeps its bytes and coordinates
    assert all(r["value"] is not None and r["kafka_offset"] >= 0 for r in quarantine.collect())
    metrics = [
        json.loads(line)
        for line in (Path(settings.paths.state_dir) / "metrics" / "stream2raw.jsonl")
        .read_text()
        .splitlines()
    ]
    assert sum(m["quarantined"] for m in metrics) == sum(injected.values())


def _fink(config: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "fink_broker.cli.main", *args, "-c", str(config)],
        cwd=config.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _batches_committed(settings: Settings) -> int:
    path = Path(settings.paths.state_dir) / "metrics" / "stream2raw.jsonl"
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_sigkill_mid_replay_loses_and_duplicates_nothing(spark, local_kafka, datasim, tmp_path):
    n_alerts, topic = 5000, "it_ztf_restart"
    settings = settings_for(
        local_kafka, tmp_path, "ztf", topic, trigger="0.5 seconds", max_offsets_per_trigger=300
    )
    config = tmp_path / "fink.toml"
    config.write_text(dump_toml(settings))
    ensure_topics(settings.kafka, [topic], 4)
    # The simulator replays at 125 alerts/s (40 s), started once the stream2raw query runs
    # (a Spark session takes 5-20 s to start, longer on a loaded machine); stream2raw is
    # killed after two committed micro-batches, while the replay still runs.
    replayed: dict[str, object] = {}

    def send() -> None:
        try:
            replayed["summary"] = replay(
                settings,
                survey="ztf",
                folder=datasim / "ztf",
                topic=topic,
                repeat=n_alerts // 50,
                rate=125,
            )
        except Exception as err:  # reported by the assertion below
            replayed["error"] = err

    sender = threading.Thread(target=send)
    first = _fink(config, "start", "stream2raw", "--foreground")
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(first.stdout), daemon=True).start()
    deadline = time.monotonic() + 120
    while not any("stream2raw: ztf topic" in line for line in lines):
        assert first.poll() is None and time.monotonic() < deadline, "".join(lines)
        time.sleep(0.2)
    sender.start()
    while _batches_committed(settings) < 2:
        assert first.poll() is None and time.monotonic() < deadline + 60, "".join(lines)
        time.sleep(0.1)
    assert sender.is_alive(), f"the kill must happen while the replay runs: {replayed} {lines}"
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(30)
    sender.join(120)
    assert replayed["summary"].ok and replayed["summary"].alerts == n_alerts
    archived_before = spark.read.parquet(Lake(settings.paths.root, "ztf").raw).count()
    assert 0 < archived_before < n_alerts

    second = _fink(config, "start", "stream2raw", "--foreground", "--trigger", "availableNow")
    out, _ = second.communicate(timeout=300)
    assert second.returncode == 0, out
    raw = spark.read.parquet(Lake(settings.paths.root, "ztf").raw)
    assert raw.count() == n_alerts
    assert raw.select("candid").distinct().count() == n_alerts
