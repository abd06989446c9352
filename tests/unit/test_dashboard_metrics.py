"""The dashboard's reading of the services' metrics files and PID records (no JVM)."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from fink_broker.config import load_settings
from fink_broker.dashboard.metrics_feed import LineFile, MetricsFeed
from fink_broker.dashboard.services_view import PIPELINE, ProcessMeter, service_rows
from fink_broker.infra import processes
from fink_broker.services.streaming import BatchMetrics, MetricsLog
from fink_broker.surveys.names import ZTF_NAME

T0 = 1_800_000_000.0


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def batch_line(service: str, batch_id: int, epoch: float, rows_in: int, **detail) -> str:
    """A line exactly as the services write it (BatchMetrics through MetricsLog's format)."""
    metrics = BatchMetrics(
        service=service,
        batch_id=batch_id,
        rows_in=rows_in,
        rows_out=rows_in - sum(detail.get("cut", {}).values()),
        quarantined=sum(detail.get("quarantine_reasons", {}).values()),
        duration_s=0.5,
        detail={**detail, "survey": ZTF_NAME},
        time=iso(epoch),
    )
    return json.dumps(asdict(metrics)) + "\n"


def test_the_feed_reads_what_metrics_log_writes(tmp_path: Path) -> None:
    settings = load_settings(None, env={}, overrides={"paths.state_dir": str(tmp_path)})
    log = MetricsLog(settings, "stream2raw")
    log.append(BatchMetrics("stream2raw", 0, 10, 8, 2, 0.3, {"quarantine_reasons": {"garbage": 2}}))
    feed = MetricsFeed(tmp_path / "metrics", history_s=3600)
    activity = feed.poll(datetime.now(UTC).timestamp())["stream2raw"]
    assert (activity.batches, activity.rows_in, activity.rows_out, activity.quarantined) == (
        1,
        10,
        8,
        2,
    )
    assert activity.counts["quarantine_reasons"] == {"garbage": 2}
    assert activity.restarts == 0


def test_partial_bad_and_restart_lines(tmp_path: Path) -> None:
    path = tmp_path / "metrics" / "raw2science.jsonl"
    path.parent.mkdir()
    first = batch_line("raw2science", 0, T0, 100, cut={"rb": 30, "nbad": 5})
    second = batch_line("raw2science", 1, T0 + 10, 50, cut={"rb": 10})
    restart = {"event": "restart", "service": "raw2science", "restarts": 1, "reason": "exit 1"}
    path.write_text(first + "{not json\n" + json.dumps({**restart, "time": iso(T0 + 5)}) + "\n")
    with path.open("a") as handle:
        handle.write(second[:25])  # a line being written: no newline yet
    feed = MetricsFeed(path.parent, history_s=3600)
    activity = feed.poll(T0 + 20)["raw2science"]
    assert activity.batches == 1 and activity.unreadable == 1
    assert "{not json" in activity.first_unreadable
    assert activity.restarts == 1 and activity.last_restart.reason == "exit 1"
    with path.open("a") as handle:
        handle.write(second[25:])
        handle.write(json.dumps({**restart, "restarts": 2, "time": iso(T0 + 15)}) + "\n")
    activity = feed.poll(T0 + 20)["raw2science"]
    assert activity.batches == 2 and activity.rows_in == 150 and activity.rows_out == 105
    assert activity.counts["cut"] == {"rb": 40, "nbad": 5}
    assert activity.restarts == 2 and activity.last_restart.restarts == 2
    assert activity.last.batch_id == 1 and activity.unreadable == 1


def test_a_rotated_file_is_read_again_from_its_start(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text("one\ntwo\n")
    lines = LineFile(path)
    assert list(lines.new_lines()) == ["one", "two"]
    rotated = tmp_path / "b.jsonl"
    rotated.write_text("three\n")
    rotated.replace(path)
    assert list(lines.new_lines()) == ["three"]
    path.write_text("")
    assert list(lines.new_lines()) == []
    with path.open("a") as handle:
        handle.write("four\n")
    assert list(lines.new_lines()) == ["four"]


def test_rates_and_series_average_over_the_window(tmp_path: Path) -> None:
    path = tmp_path / "stream2raw.jsonl"
    rows = [(T0 + 2 * i, 10 + i) for i in range(60)]  # a batch every 2 s for 2 minutes
    path.write_text("".join(batch_line("stream2raw", i, t, n) for i, (t, n) in enumerate(rows)))
    now = rows[-1][0] + 1
    activity = MetricsFeed(tmp_path, history_s=600).poll(now)["stream2raw"]
    rates = activity.rates(now, window_s=30)
    inside = [n for t, n in rows if t > now - 30]
    assert rates["batches"] == len(inside) == 15
    assert rates["in_per_s"] == pytest.approx(sum(inside) / 30)
    series = activity.series(now, step_s=10, window_s=30)
    times = np.array([t for t, _ in rows])
    counts = np.array([n for _, n in rows])
    for edge, rate in zip(series["time"], series["in_per_s"], strict=True):
        expected = counts[(times > edge - 30) & (times <= edge)].sum() / 30
        assert rate == pytest.approx(expected)
    assert series["time"][-1] == pytest.approx(now)
    assert series["time"][0] >= rows[0][0] - 10  # no empty past before the first batch
    activity.trim(now + 600)
    assert not activity.recent and activity.batches == 60  # totals outlive the history


def test_service_rows_list_the_pipeline_and_what_runs(tmp_path: Path) -> None:
    settings = load_settings(None, env={}, overrides={"paths.state_dir": str(tmp_path)})
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "raw2science.jsonl").write_text(batch_line("raw2science", 3, T0, 7))
    record = processes.start_background(
        "raw2science",
        [sys.executable, "-c", "import time; time.sleep(60)"],
        settings=settings,
        log_path=tmp_path / "child.log",
    )
    try:
        activities = MetricsFeed(tmp_path / "metrics", history_s=3600).poll(T0 + 1)
        rows = {r["name"]: r for r in service_rows(settings, activities, ProcessMeter(), T0 + 1)}
        assert list(rows)[: len(PIPELINE)] == list(PIPELINE)
        assert rows["raw2science"]["up"] and rows["raw2science"]["pid"] == record.pid
        assert rows["raw2science"]["last_batch"]["batch_id"] == 3
        assert rows["raw2science"]["restarts"] == 0
        assert not rows["stream2raw"]["up"] and rows["stream2raw"]["last_batch"] is None
    finally:
        processes.stop(settings, "raw2science", timeout=5)
    rows = {r["name"]: r for r in service_rows(settings, activities, ProcessMeter(), T0 + 1)}
    assert not rows["raw2science"]["up"] and rows["raw2science"]["batches"] == 1


def test_stages_read_up_while_the_one_pass_pipeline_runs_them(tmp_path: Path) -> None:
    settings = load_settings(None, env={}, overrides={"paths.state_dir": str(tmp_path)})
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "stream2raw.jsonl").write_text(batch_line("stream2raw", 5, T0, 9))
    record = processes.start_background(
        "pipeline",
        [sys.executable, "-c", "import time; time.sleep(60)"],
        settings=settings,
        log_path=tmp_path / "child.log",
    )
    try:
        activities = MetricsFeed(tmp_path / "metrics", history_s=3600).poll(T0 + 1)
        rows = {r["name"]: r for r in service_rows(settings, activities, ProcessMeter(), T0 + 1)}
        for stage in PIPELINE:
            assert rows[stage]["up"] and rows[stage]["in_pipeline"], stage
            assert rows[stage]["pid"] == record.pid and "cpu_percent" not in rows[stage]
        assert rows["stream2raw"]["last_batch"]["batch_id"] == 5
        assert rows["pipeline"]["up"] and "cpu_percent" in rows["pipeline"]
        assert "in_pipeline" not in rows["pipeline"]
    finally:
        processes.stop(settings, "pipeline", timeout=5)
    rows = {r["name"]: r for r in service_rows(settings, activities, ProcessMeter(), T0 + 1)}
    assert not any(rows[stage]["up"] for stage in PIPELINE)
