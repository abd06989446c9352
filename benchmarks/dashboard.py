"""Benchmark: what the dashboard costs over a long night, with nothing else running.

Writes the state a night leaves: a metrics file per streaming service with one line per
micro-batch (``--hours`` of ``--trigger-s`` triggers), and a ZTF-shaped science archive of
``--files`` committed Parquet files of ``--rows`` alerts each, with a Spark-style sink log
compacted every 10 batches (the compaction file lists every file of the night). Then times
the dashboard's reads as its loops do them: the first read of the metrics (the whole
night), a refresh after one more micro-batch per service, the science window cold, warm (no
new file) and after one new committed file, and the CPU the collector's loops take over
``--seconds`` of refreshes every ``--refresh-s`` (Kafka and the API point at closed ports,
so their loops only wait).

    .venv/bin/python benchmarks/dashboard.py --hours 12 --files 2000 --rows 500
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))

from benchmarks.scratch import add_keep_option, scratch_folder, scratch_paths  # noqa: E402

from fink_broker.config import load_settings  # noqa: E402
from fink_broker.dashboard.collector import Collector  # noqa: E402
from fink_broker.lake import Lake  # noqa: E402
from fink_broker.surveys.names import ZTF_NAME  # noqa: E402

SERVICES = ("stream2raw", "raw2science", "distribution", "archive")
COMPACT_EVERY = 10


def metrics_line(service: str, batch: int, epoch: float) -> str:
    return json.dumps(
        {
            "service": service,
            "batch_id": batch,
            "rows_in": 500,
            "rows_out": 350,
            "quarantined": 0,
            "duration_s": 1.2,
            "detail": {"cut": {"rb": 120, "nbad": 30}, "survey": ZTF_NAME},
            "time": datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds"),
        }
    )


def science_file(path: Path, rows: int, t0: float, rng: np.random.Generator) -> None:
    """One file of ZTF-shaped alerts: the fields the canonical table reads, and the times."""
    candid = rng.integers(10**18, 2 * 10**18, rows)
    candidate = pa.StructArray.from_arrays(
        [
            pa.array(2458849.5 + rng.random(rows)),
            pa.array(rng.uniform(0, 360, rows)),
            pa.array(rng.uniform(-30, 90, rows)),
            pa.array(rng.integers(1, 3, rows).astype(np.int32)),
            pa.array(rng.uniform(15, 21, rows).astype(np.float32)),
            pa.array(rng.uniform(0.01, 0.2, rows).astype(np.float32)),
            pa.array(["t"] * rows),
        ],
        names=["jd", "ra", "dec", "fid", "magpsf", "sigmapsf", "isdiffpos"],
    )
    kafka = t0 + rng.random(rows)
    columns = {
        "objectId": pa.array([f"ZTF20a{i:07d}" for i in range(rows)]),
        "candid": pa.array(candid),
        "candidate": candidate,
        "fink_class": pa.array(["Unknown"] * rows),
    }
    for name, offset in (
        ("kafka_timestamp", 0.0),
        ("fink_ingest_time", 1.0),
        ("processing_start", 3.0),
        ("processing_end", 4.0),
    ):
        micros = ((kafka + offset) * 1e6).astype(np.int64)
        columns[name] = pa.array(micros, pa.int64()).cast(pa.timestamp("us"))
    pq.write_table(pa.table(columns), path)


def log_entry(path: Path, modified_ms: int) -> str:
    return json.dumps(
        {"path": f"file:{path}", "size": path.stat().st_size, "isDir": False,
         "modificationTime": modified_ms, "blockReplication": 1, "blockSize": 1, "action": "add"}
    )  # fmt: skip


def write_night(root: Path, state: Path, args: argparse.Namespace) -> tuple[Path, int]:
    """The metrics files and the science archive; returns the log folder and next batch."""
    now = time.time()
    batches = int(args.hours * 3600 / args.trigger_s)
    (state / "metrics").mkdir(parents=True)
    for service in SERVICES:
        with (state / "metrics" / f"{service}.jsonl").open("w") as out:
            for i in range(batches):
                out.write(metrics_line(service, i, now - (batches - i) * args.trigger_s) + "\n")
    science = Path(Lake(str(root), ZTF_NAME).science)
    night = science / "night=20200101"
    night.mkdir(parents=True)
    log_dir = science / "_spark_metadata"
    log_dir.mkdir()
    rng = np.random.default_rng(1)
    entries: list[str] = []
    for batch in range(args.files):
        path = night / f"part-{batch:06d}.parquet"
        science_file(path, args.rows, now - (args.files - batch) * args.trigger_s, rng)
        entries.append(log_entry(path, int(1000 * (now - args.files + batch))))
        if (batch + 1) % COMPACT_EVERY == 0:
            (log_dir / f"{batch}.compact").write_text("v1\n" + "\n".join(entries) + "\n")
            for old in log_dir.iterdir():  # the sink's clean-up of older batch files
                if old.name.isdigit():
                    old.unlink()
        else:
            (log_dir / str(batch)).write_text("v1\n" + entries[-1] + "\n")
    return log_dir, args.files


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=12.0, help="night of metrics lines")
    parser.add_argument("--trigger-s", type=float, default=2.0, help="seconds per micro-batch")
    parser.add_argument("--files", type=int, default=2000, help="committed science files")
    parser.add_argument("--rows", type=int, default=500, help="alerts per science file")
    parser.add_argument("--seconds", type=float, default=30.0, help="refreshes measured")
    parser.add_argument("--refresh-s", type=float, default=2.0)
    add_keep_option(parser)
    args = parser.parse_args()

    tmp = scratch_folder("fink-bench-dashboard-", args.keep)
    paths = scratch_paths(tmp, REPO)
    started = time.perf_counter()
    log_dir, batch = write_night(Path(paths["paths.root"]), Path(paths["paths.state_dir"]), args)
    lines = int(args.hours * 3600 / args.trigger_s)
    compact = max(log_dir.glob("*.compact"), key=lambda p: p.stat().st_size)
    print(
        f"night written in {time.perf_counter() - started:.1f} s: {len(SERVICES)} x {lines:,} "
        f"metrics lines, {args.files:,} science files x {args.rows} alerts, compaction file "
        f"{compact.stat().st_size / 1e6:.1f} MB"
    )
    settings = load_settings(
        None,
        env={},
        overrides={
            **paths,
            "kafka.bootstrap_servers": "127.0.0.1:9",
            "api.port": 9,
            "dashboard.refresh_s": args.refresh_s,
            "dashboard.request_timeout_s": 1.0,
        },
    )
    collector = Collector(settings)
    first = timed(lambda: collector.refresh("services"))
    for service in SERVICES:
        with (Path(paths["paths.state_dir"]) / "metrics" / f"{service}.jsonl").open("a") as out:
            out.write(metrics_line(service, lines, time.time()) + "\n")
    again = timed(lambda: collector.refresh("services"))
    cold = timed(lambda: collector.refresh("science"))
    warm = timed(lambda: collector.refresh("science"))
    night = log_dir.parent / "night=20200101"
    path = night / "part-new.parquet"
    science_file(path, args.rows, time.time(), np.random.default_rng(2))
    (log_dir / str(batch)).write_text("v1\n" + log_entry(path, int(time.time() * 1000)) + "\n")
    new = timed(lambda: collector.refresh("science"))
    snapshot = json.dumps(collector.snapshot())
    science = collector.snapshot()["science"]
    assert science["error"] == "", science["error"]
    latency = science["data"]["latency"][ZTF_NAME]
    print(
        f"services panel: first read of the night {first * 1000:.0f} ms, then {again * 1000:.1f} ms"
    )
    print(
        f"science panel: cold {cold * 1000:.0f} ms, warm {warm * 1000:.1f} ms, after one new "
        f"file {new * 1000:.1f} ms ({latency['alerts']:,} alerts in {latency['files']} files)"
    )
    print(f"snapshot: {len(snapshot) / 1e3:.0f} kB of JSON per page refresh")

    cpu0, wall0 = time.process_time(), time.perf_counter()
    collector.start()
    time.sleep(args.seconds)
    collector.stop()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    print(
        f"collector loops over {wall:.0f} s (refresh {args.refresh_s:g} s): {cpu:.2f} CPU s, "
        f"{100 * cpu / wall:.1f}% of one core"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
