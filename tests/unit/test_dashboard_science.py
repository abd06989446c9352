"""The dashboard's reading of the science archive: committed files, latency, latest alerts.

The archive is made of the real ZTF alerts of ../shared/datasim written with pyarrow, with a
sink log in the format Spark's file sink writes (the Spark tier reads a real one in
tests/integration/test_dashboard_browser.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fink_broker.dashboard.science_window import ScienceWindow, percentiles
from fink_broker.dashboard.sink_log import COMPACT_TAIL_BYTES, newest_files, parse_entries
from fink_broker.lake import Lake
from fink_broker.surveys.base import iter_alert_files, read_alert_file
from fink_broker.surveys.names import ZTF_NAME

T0 = 1_800_000_000.0


def log_line(path: Path, modified_ms: int) -> str:
    entry = {
        "path": path.as_uri().replace("file:///", "file:/"),
        "size": path.stat().st_size,
        "isDir": False,
        "modificationTime": modified_ms,
        "blockReplication": 1,
        "blockSize": 33554432,
        "action": "add",
    }
    return json.dumps(entry)


def write_file(folder: Path, name: str, records: list[dict], times: dict[str, list]) -> Path:
    """One science-like Parquet file: the alerts without cutouts and history, plus times."""
    rows = [
        {k: v for k, v in r.items() if not k.startswith("cutout") and k != "prv_candidates"}
        for r in records
    ]
    table = pa.Table.from_pylist(rows)
    for column, values in times.items():
        stamps = pa.array([int(v * 1e6) for v in values], pa.int64()).cast(pa.timestamp("us"))
        table = table.append_column(column, stamps)
    table = table.append_column("finkclass", pa.array(["Unknown"] * len(rows)))
    path = folder / "night=20200101" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


@pytest.fixture
def ztf_records(datasim: Path) -> list[dict]:
    return [read_alert_file(p)[0] for p in iter_alert_files(datasim / ZTF_NAME)]


def make_archive(root: Path, records: list[dict]) -> tuple[list[Path], np.ndarray, np.ndarray]:
    """Two committed files (batch 0 in a compaction file, batch 1 alone) and one file that
    no batch committed; returns the committed paths, published and end times."""
    science = Path(Lake(str(root), ZTF_NAME).science)
    log_dir = science / "_spark_metadata"
    log_dir.mkdir(parents=True)
    n = len(records)
    kafka = T0 + np.arange(n, dtype=float)
    ingest = kafka + 0.5
    start = ingest + np.linspace(1.0, 3.0, n)
    end = start + 0.25 + (np.arange(n) % 7) * 0.1
    half = n // 2
    paths = []
    for i, part in enumerate((slice(0, half), slice(half, n))):
        times = {
            "kafka_timestamp": kafka[part],
            "fink_ingest_time": ingest[part],
            "processing_start": start[part],
            "processing_end": end[part],
        }
        paths.append(write_file(science, f"part-{i}.parquet", records[part], times))
    late = {k: [T0 + 9999] * 3 for k in ("kafka_timestamp", "processing_end")}
    write_file(science, "part-uncommitted.parquet", records[:3], late)
    (log_dir / "0.compact").write_text("v1\n" + log_line(paths[0], 1000) + "\n")
    (log_dir / "1").write_text("v1\n" + log_line(paths[1], 2000) + "\n")
    return paths, kafka, end


def test_sink_log_lists_committed_files_newest_first(tmp_path: Path, ztf_records) -> None:
    paths, _, _ = make_archive(tmp_path, ztf_records)
    science = Lake(str(tmp_path), ZTF_NAME).science
    assert [f.path for f in newest_files(science, 10)] == [str(paths[1]), str(paths[0])]
    assert [f.path for f in newest_files(science, 1)] == [str(paths[1])]
    assert newest_files(tmp_path / "nowhere", 5) == []


def test_a_long_compaction_file_is_read_from_its_tail(tmp_path: Path) -> None:
    lines = [
        json.dumps({"path": f"file:/x/{i}.parquet", "size": 1, "modificationTime": i})
        for i in range(20000)
    ]
    log_dir = tmp_path / "_spark_metadata"
    log_dir.mkdir()
    text = "v1\n" + "\n".join(lines) + "\n"
    assert len(text) > 2 * COMPACT_TAIL_BYTES
    (log_dir / "19.compact").write_text(text)
    found = newest_files(tmp_path, 3)
    assert [f.path for f in found[:3]] == [
        "/x/19999.parquet",
        "/x/19998.parquet",
        "/x/19997.parquet",
    ]
    assert all(f.path.endswith(".parquet") for f in found)  # the torn first line is skipped
    assert parse_entries('{"path": "file:/y", "action": "delete"}\n{"pa') == []


def test_latency_percentiles_of_the_committed_alerts(tmp_path: Path, ztf_records) -> None:
    _, kafka, end = make_archive(tmp_path, ztf_records)
    window = ScienceWindow(str(tmp_path), window=1000, latest=5)
    latency = window.read()["latency"][ZTF_NAME]
    # the uncommitted file (latencies of 0 s) must not count
    assert latency["alerts"] == len(ztf_records) and latency["files"] == 2
    expected = np.percentile(end - kafka, [50, 95, 99])
    total = latency["stages"]["total"]
    assert [total["p50"], total["p95"], total["p99"]] == pytest.approx(expected.tolist())
    assert latency["stages"]["kafka_to_raw"]["p99"] == pytest.approx(0.5)
    assert latency["to"] == pytest.approx(end.max())
    assert percentiles(np.array([np.nan]))["n"] == 0


@pytest.mark.parametrize("count", [4, 30])  # 30: more than the newest file holds
def test_the_latest_alerts_with_their_canonical_values(
    tmp_path: Path, ztf_records, count: int
) -> None:
    _, _, end = make_archive(tmp_path, ztf_records)
    latest = ScienceWindow(str(tmp_path), window=10, latest=count).read()["latest"]
    newest = np.argsort(-end, kind="stable")[:count]
    assert len(latest) == count
    assert [a["alertId"] for a in latest] == [str(ztf_records[i]["candid"]) for i in newest]
    for alert, i in zip(latest, newest, strict=True):
        candidate = ztf_records[i]["candidate"]
        assert alert["objectId"] == ztf_records[i]["objectId"]
        assert alert["mjd"] == pytest.approx(candidate["jd"] - 2400000.5)
        assert alert["mag"] == pytest.approx(candidate["magpsf"])
        assert alert["band"] == {1: "g", 2: "r", 3: "i"}[candidate["fid"]]
        assert alert["processing_end"] == pytest.approx(end[i])
        assert alert["survey"] == ZTF_NAME and alert["finkclass"] == "Unknown"
    json.dumps(latest)  # the page gets plain JSON values


def test_a_removed_file_is_a_note_not_a_failure(tmp_path: Path, ztf_records) -> None:
    paths, _, _ = make_archive(tmp_path, ztf_records)
    paths[1].unlink()
    window = ScienceWindow(str(tmp_path), window=1000, latest=3)
    read = window.read()
    assert read["latency"][ZTF_NAME]["files"] == 1
    assert str(paths[1]) in window.errors
    assert ScienceWindow("hdfs://nn/fink", window=10, latest=3).read()["note"]
