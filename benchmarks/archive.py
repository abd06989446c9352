"""Benchmark: rows/s into HBase, and REST API latency on an archive of >= 100,000 alerts.

Builds the science archive of the real alerts (raw2science on the datasim files), then
multiplies it in Spark into ``--nalerts`` science alerts: copies get fresh object ids and
alert ids, ``--epochs`` alerts per object one day apart (so light curves have several
points), and positions spread uniformly over the sky (so a 10 arcsec cone holds one object,
as on the real sky, instead of thousands of copies). Then, with a real standalone HBase:

  (a) the archive service (bounded run over the science Parquet) in alerts/s and in HBase
      rows/s over every table, with and without cutouts;
  (b) how much of the writer's time is the Python loop that pairs qualifiers with values
      (the rest is the Thrift call), measured on one Arrow batch;
  (c) API latency p50/p95/p99 over HTTP (uvicorn, ``fink start api``'s server) for the light
      curve of a random object and for a 10 arcsec cone search around a random alert.

    .venv/bin/python benchmarks/archive.py --survey ztf --nalerts 100000
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))

from benchmarks.scratch import add_keep_option, scratch_folder, scratch_paths  # noqa: E402
from benchmarks.stream2raw import free_port  # noqa: E402

from fink_broker.config import Settings, load_settings  # noqa: E402
from fink_broker.infra import hbase_local  # noqa: E402
from fink_broker.lake import Lake  # noqa: E402

#: candid / diaSourceId shift between copies (the real ids of one night span far less)
ID_STRIDE = 10**12


def science_of_real_alerts(spark, settings: Settings, survey: str, folder: Path):
    """raw2science (cuts relaxed) on the real alerts, as stream2raw would have archived them."""
    from fink_broker.engine.decode import archive_columns, decode
    from fink_broker.engine.sinks import write_batch
    from fink_broker.services import raw2science
    from fink_broker.surveys import get_adapter
    from fink_broker.surveys.base import iter_alert_files, read_alert_file
    from tests.spark.test_decode import kafka_like

    adapter = get_adapter(survey)
    records = [read_alert_file(f)[0] for f in iter_alert_files(folder)]
    decoded = decode(kafka_like(spark, [adapter.encode(r) for r in records]), adapter)
    lake = Lake(settings.paths.root, survey)
    write_batch(spark, archive_columns(decoded, adapter), lake.raw, 0, ["night"])
    query = raw2science.start(settings, spark)
    query.awaitTermination()
    return spark.read.parquet(lake.science)


def multiplied(science, survey: str, n: int, epochs: int):
    """``n`` science alerts from the real ones: fresh ids, ``epochs`` alerts per object,
    positions uniform on the sphere (one position per object copy)."""
    from pyspark.sql import functions as F

    base = science.count()
    copies = -(-n // base)
    k = F.col("_k")
    obj = F.floor(k / epochs)
    epoch = (k % epochs).cast("double")
    # a per-object-copy pseudo-random position: hash of (object copy, original row)
    seed = F.xxhash64(obj, F.col("_row"))
    u1 = (F.abs(seed) % 1_000_003) / 1_000_003.0
    u2 = (F.abs(F.xxhash64(seed)) % 1_000_033) / 1_000_033.0
    ra, dec = u1 * 360.0, F.degrees(F.asin(u2 * 2.0 - 1.0))
    shift = k.cast("long") * ID_STRIDE
    frame = science.withColumn("_row", F.monotonically_increasing_id()).crossJoin(
        science.sparkSession.range(copies).withColumnRenamed("id", "_k")
    )
    if survey == "ztf":
        frame = frame.select(
            *[c for c in science.columns if c not in ("objectId", "candid", "candidate")],
            F.concat_ws("_", "objectId", obj.cast("string")).alias("objectId"),
            (F.col("candid") + shift).alias("candid"),
            F.col("candidate")
            .withField("candid", F.col("candidate.candid") + shift)
            .withField("jd", F.col("candidate.jd") + epoch)
            .withField("ra", ra)
            .withField("dec", dec)
            .alias("candidate"),
        )
    else:
        new_object = F.col("diaSource.diaObjectId") + obj * ID_STRIDE
        frame = frame.select(
            *[c for c in science.columns if c not in ("diaSourceId", "diaSource")],
            (F.col("diaSourceId") + shift).alias("diaSourceId"),
            F.col("diaSource")
            .withField("diaSourceId", F.col("diaSource.diaSourceId") + shift)
            .withField("diaObjectId", new_object)
            .withField("midpointMjdTai", F.col("diaSource.midpointMjdTai") + epoch)
            .withField("ra", ra)
            .withField("dec", dec)
            .alias("diaSource"),
        )
    return frame.select(*science.columns).limit(n)


class PeakRss:
    """Peak resident memory of a set of process trees, sampled every 0.5 s."""

    def __init__(self, pids: list[int]) -> None:
        self.pids, self.peak, self._stop = pids, dict.fromkeys(pids, 0), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid in self.pids:
                try:
                    proc = psutil.Process(pid)
                    rss = sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)])
                    self.peak[pid] = max(self.peak[pid], rss)
                except psutil.NoSuchProcess:
                    pass
            self._stop.wait(0.5)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


def python_share(spark, settings: Settings, survey: str) -> tuple[float, float]:
    """(µs per row of the Python pairing loop, rows) on one Arrow batch of main rows."""
    from fink_broker.engine.hbase_rows import archive_rows
    from fink_broker.engine.hbase_sink import row_cells
    from fink_broker.tables.layout import ArchiveTables

    science = spark.read.parquet(Lake(settings.paths.root, survey).science).limit(2000)
    built = archive_rows(science, survey, ArchiveTables("bench", survey), cutouts=False)
    batches = built.rows.toArrow().to_batches()
    t0 = time.perf_counter()
    rows = sum(len(list(row_cells(batch))) for batch in batches)
    seconds = time.perf_counter() - t0
    return seconds / rows * 1e6, rows


def _object_of(cells: dict[bytes, bytes]) -> str:
    """The object id of an index row: its main-table key is ``<objectId>_<mjd>``."""
    return cells[b"r:key"].decode().rsplit("_", 1)[0]


def percentiles(samples: list[float]) -> str:
    p50, p95, p99 = np.percentile(np.array(samples) * 1000.0, [50, 95, 99])
    return f"p50 {p50:.0f} ms, p95 {p95:.0f} ms, p99 {p99:.0f} ms (n={len(samples)})"


def api_latency(settings: Settings, survey: str, requests: int) -> None:
    """Light-curve and 10 arcsec cone-search latency over HTTP on a live uvicorn server."""
    import httpx2 as httpx
    import uvicorn

    from fink_broker.api.app import create_app
    from fink_broker.api.store import ArchiveStore
    from fink_broker.tables.layout import TableKind

    settings.api.port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=settings.api.port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{settings.api.port}/api/v1"
    while not server.started:
        time.sleep(0.1)
    # a sample of archived alerts: object ids and positions, read from the pixel index
    store = ArchiveStore(settings, survey)
    rng = np.random.default_rng(7)
    with store._table(TableKind.PIXEL) as table:
        sample = [cells for _, cells in table.scan(limit=20000)]
    picks = rng.choice(len(sample), size=min(requests, len(sample)), replace=False)
    chosen = [sample[i] for i in picks]
    curve, cone, points = [], [], []
    with httpx.Client(timeout=60) as client:
        client.get(f"{base}/classes")  # warm the schema cache and the connection pool
        for cells in chosen:
            t0 = time.perf_counter()
            answer = client.get(f"{base}/objects", params={"objectId": _object_of(cells)})
            curve.append(time.perf_counter() - t0)
            points.append(len(answer.json()))
        for cells in chosen:
            params = {"ra": float(cells[b"r:ra"]), "dec": float(cells[b"r:dec"]), "radius": 10}
            t0 = time.perf_counter()
            answer = client.get(f"{base}/conesearch", params=params)
            cone.append(time.perf_counter() - t0)
            assert answer.status_code == 200 and answer.json(), answer.text
    server.should_exit = True
    thread.join(10)
    print(
        f"(c) light curve of one object ({np.mean(points):.1f} alerts each): {percentiles(curve)}"
    )
    print(f"    10 arcsec cone search: {percentiles(cone)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--survey", choices=["ztf", "rubin"], default="ztf")
    parser.add_argument("--nalerts", type=int, default=100_000)
    parser.add_argument("--epochs", type=int, default=10, help="alerts per object")
    parser.add_argument(
        "--cutout-alerts",
        type=int,
        default=20_000,
        help="alerts of the extra run that stores cutouts (0: skip)",
    )
    parser.add_argument("--requests", type=int, default=300, help="API requests per kind")
    parser.add_argument("--datasim", default=str(REPO.parent / "shared" / "datasim"))
    add_keep_option(parser)
    args = parser.parse_args()

    tmp = scratch_folder("fink-bench-archive-", args.keep)
    zookeeper, master, regionserver, thrift = (free_port() for _ in range(4))
    settings = load_settings(
        None,
        env={},
        overrides={
            **scratch_paths(tmp, REPO),
            "stream2raw.survey": args.survey,
            "raw2science.trigger": "availableNow",
            "raw2science.ztf_rb_min": 0.0,
            "raw2science.rubin_reliability_min": 0.0,
            "archive.trigger": "availableNow",
            "local_hbase.zookeeper_port": zookeeper,
            "local_hbase.master_port": master,
            "local_hbase.regionserver_port": regionserver,
            "hbase.thrift_port": thrift,
            "hbase.namespace": "bench",
        },
    )
    from fink_broker.engine.session import get_session
    from fink_broker.services import archive

    spark = get_session(settings, app_name="fink-bench-archive")
    real = science_of_real_alerts(spark, settings, args.survey, Path(args.datasim) / args.survey)
    lake = Lake(settings.paths.root, args.survey)
    big = multiplied(real, args.survey, args.nalerts, args.epochs)
    big_path = str(tmp / "big")
    big.repartition(16).write.partitionBy("night").parquet(big_path)
    shutil.rmtree(lake.science)
    shutil.move(big_path, lake.science)
    n = spark.read.parquet(lake.science).count()
    print(f"{args.survey}: science archive of {n:,} alerts ({args.epochs} per object)")

    records = hbase_local.start_hbase(settings)
    try:
        archive.create_tables(settings, args.survey)
        for label, cutouts, limit in (
            ("no cutouts", False, None),
            ("with cutouts", True, args.cutout_alerts),
        ):
            if limit == 0:
                continue
            run = copy.deepcopy(settings)
            run.archive.cutouts = cutouts
            if limit is not None:  # its own tables and lake: cutouts are 3 x ~20 kB per alert
                run.hbase.namespace = "benchcut"
                run.paths.root = str(tmp / "cutlake")
                target = Path(Lake(run.paths.root, args.survey).science)
                target.parent.mkdir(parents=True)
                subset = spark.read.parquet(lake.science).limit(limit)
                subset.write.partitionBy("night").parquet(str(target))
            alerts = spark.read.parquet(Lake(run.paths.root, args.survey).science).count()
            metrics = Path(run.paths.state_dir) / "metrics" / "archive.jsonl"
            seen = len(metrics.read_text().splitlines()) if metrics.exists() else 0
            pids = [psutil.Process().pid, *(r.pid for r in records)]
            with PeakRss(pids) as rss:
                t0 = time.perf_counter()
                query = archive.start(run, spark)
                query.awaitTermination()
                seconds = time.perf_counter() - t0
            batches = [json.loads(line) for line in metrics.read_text().splitlines()[seen:]]
            written = sum(sum(b["detail"]["tables"].values()) for b in batches)
            archived = sum(b["rows_out"] for b in batches)
            assert archived == alerts, (archived, alerts)
            print(
                f"(a) archive, {label}: {alerts:,} alerts in {seconds:.1f} s = "
                f"{alerts / seconds:,.0f} alerts/s, {written / seconds:,.0f} HBase rows/s "
                f"({written / alerts:.1f} rows per alert over every table)"
            )
            peaks = ", ".join(f"{r.name} {rss.peak[r.pid] / 2**20:,.0f} MiB" for r in records)
            driver = rss.peak[pids[0]] / 2**20
            print(f"    peak RSS: Spark driver+workers {driver:,.0f} MiB, {peaks}")
        micro, rows = python_share(spark, settings, args.survey)
        print(
            f"(b) Python pairing loop: {micro:.1f} us per HBase row ({rows} rows); "
            f"the writer spends {1e6 / max(written / seconds, 1):.0f} us per row in all"
        )
        api_latency(settings, args.survey, args.requests)
    finally:
        hbase_local.stop_hbase(settings)
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
