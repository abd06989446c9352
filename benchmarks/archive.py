"""Benchmark: rows/s into HBase, and REST API latency on an archive of >= 1,000,000 alerts.

Builds the science archive of the real alerts (raw2science on the datasim files), then
multiplies it in Spark into ``--nalerts`` science alerts: copies get fresh object ids and
alert ids, ``--epochs`` alerts per object one day apart (so light curves have several
points), and positions spread uniformly over the sky (so a 10 arcsec cone holds one object,
as on the real sky), but for ``--dense-fraction`` of the objects, packed in a 1 degree disc
(a crowded field: the 1 degree cone with ``n=1000`` must have more than 1000 objects to
choose from). The copies carry no cutouts (3 x ~20 kB an alert would not fit the disk);
``--cutout-alerts`` of them are archived again, with cutouts, in tables of their own.
Then, with a real standalone HBase:

  (a) the archive service (bounded run over the science Parquet) in alerts/s and in HBase
      rows/s over every table, with and without cutouts;
  (b) how much of the writer's time is the Python loop that pairs qualifiers with values
      (the rest is the Thrift call), measured on one Arrow batch;
  (c) API latency p50/p95/p99 over HTTP (uvicorn, ``fink start api``'s server) with
      ``--clients`` concurrent clients, per route: the light curve of a random object, a
      10 arcsec cone around a random alert, a 1 degree cone with ``n=1000`` in the crowded
      field, ``latests?n=100``, and a cutout (PNG) of the cutout run.

    .venv/bin/python benchmarks/archive.py --survey ztf --nalerts 1000000 --keep
    .venv/bin/python benchmarks/archive.py --api-only /tmp/fink-bench-archive-XXXX

``--keep`` leaves the archive (and its HBase) in the scratch folder; ``--api-only`` starts
that HBase again and measures (c) alone.
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
from fink_broker.surveys.archive_shapes import shape_of  # noqa: E402

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


#: the crowded field (COSMOS) of ``--dense-fraction`` of the objects, and its radius
DENSE_RA, DENSE_DEC, DENSE_RADIUS_DEG = 150.1, 2.2, 1.0


def multiplied(science, survey: str, n: int, epochs: int, dense_fraction: float):
    """``n`` science alerts from the real ones: fresh ids, ``epochs`` alerts per object,
    positions uniform on the sphere (one position per object copy) but for
    ``dense_fraction`` of the objects, uniform in the crowded field's disc; no cutouts."""
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
    u3 = (F.abs(F.xxhash64(seed, F.lit(3))) % 1_000_037) / 1_000_037.0
    dense = u3 < dense_fraction
    # in the disc: radius sqrt(u) (uniform in area), angle 2 pi u'
    r, theta = F.sqrt(u1) * DENSE_RADIUS_DEG, u2 * 2 * np.pi
    dense_dec = F.lit(DENSE_DEC) + r * F.cos(theta)
    dense_ra = F.lit(DENSE_RA) + r * F.sin(theta) / np.cos(np.radians(DENSE_DEC))
    ra = F.when(dense, dense_ra).otherwise(u1 * 360.0)
    dec = F.when(dense, dense_dec).otherwise(F.degrees(F.asin(u2 * 2.0 - 1.0)))
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


def without_cutouts(science):
    """The alerts with their cutout columns null (same schema)."""
    from pyspark.sql import functions as F

    for field in science.schema.fields:
        if field.name.startswith("cutout"):
            science = science.withColumn(field.name, F.lit(None).cast(field.dataType))
    return science


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
    from fink_broker.engine.hbase_rows import IndexOptions, archive_rows
    from fink_broker.engine.hbase_sink import row_cells
    from fink_broker.surveys.archive_shapes import archive_tables

    science = spark.read.parquet(Lake(settings.paths.root, survey).science).limit(2000)
    tables = archive_tables("bench", survey)
    built = archive_rows(science, survey, tables, IndexOptions(cutouts=False))
    batches = built.rows.toArrow().to_batches()
    t0 = time.perf_counter()
    rows = sum(len(list(row_cells(batch))) for batch in batches)
    seconds = time.perf_counter() - t0
    return seconds / rows * 1e6, rows


def alert_sample(spark, settings: Settings, survey: str, size: int):
    """Object ids and positions of ``size`` archived alerts drawn at random, the alert ids
    of the cutout run, and the most common Fink label."""
    from pyspark.sql import functions as F

    from fink_broker.engine.canonical import canonical_columns

    science = spark.read.parquet(Lake(settings.paths.root, survey).science)
    canon = canonical_columns(science, survey, ["objectId", "ra", "dec"])
    total = science.count()
    picked = (
        science.select(*[c.alias(n) for n, c in canon.items()])
        .sample(fraction=min(1.0, 3.0 * size / total), seed=7)
        .limit(size)
        .toPandas()
    )
    label = science.groupBy("fink_class").count().orderBy(F.desc("count")).first()[0]
    return picked, label


def api_latency(spark, settings: Settings, survey: str, clients: int, requests: int) -> None:
    """Latency per route over HTTP on a live uvicorn server, ``clients`` at a time."""
    from benchmarks.api_load import Route, Server, load, warm

    from fink_broker.api.app import create_app

    sample, label = alert_sample(spark, settings, survey, requests)
    shape = shape_of(survey)
    object_param = shape.object_param
    curve_route = "objects" if shape.summary_struct is None else "sources"
    prefix = f"/{survey}/api/v1"

    def pick(i: int):
        return sample.iloc[i % len(sample)]

    def dense_centre(i: int) -> dict:
        offset = np.random.default_rng(i).uniform(-0.1, 0.1, size=2)
        return {"ra": DENSE_RA + offset[0], "dec": DENSE_DEC + offset[1], "radius": 3600}

    routes = [
        Route(
            "light curve", f"{prefix}/{curve_route}", lambda i: {object_param: pick(i)["objectId"]}
        ),
        Route(
            "10 arcsec cone",
            f"{prefix}/conesearch",
            lambda i: {"ra": pick(i)["ra"], "dec": pick(i)["dec"], "radius": 10},
        ),
        Route(
            "1 degree cone, n=1000",
            f"{prefix}/conesearch",
            lambda i: {**dense_centre(i), "n": 1000},
        ),
        Route("latests n=100", f"{prefix}/latests", lambda i: {"class": label, "n": 100})
        if "latests" in shape.routes
        else Route("tags n=100", f"{prefix}/tags", lambda i: {"tag": "new_transients", "n": 100}),
        Route(
            "SCS 10 arcsec",
            f"/{survey}/scs",
            lambda i: {"RA": pick(i)["ra"], "DEC": pick(i)["dec"], "SR": 10 / 3600},
        ),
    ]
    settings.api.port = free_port()
    with Server(create_app(settings), settings.api.port) as server:
        warm(server.base, routes)
        print(f"(c) API latency, {clients} concurrent clients, {requests} requests per route:")
        for route in routes:
            outcome = load(server.base, route, clients, requests)
            print(f"    {route.name:<24} {outcome.summary()}")


def cutout_latency(settings: Settings, survey: str, clients: int, requests: int, ids) -> None:
    """PNG cutout latency on the cutout run's tables."""
    from benchmarks.api_load import Route, Server, load, warm

    from fink_broker.api.app import create_app

    alert_param = shape_of(survey).alert_param
    route = Route(
        "cutout (PNG)", f"/{survey}/api/v1/cutouts", lambda i: {alert_param: ids[i % len(ids)]}
    )
    with Server(create_app(settings), free_port()) as server:
        warm(server.base, [route])
        outcome = load(server.base, route, clients, requests)
        print(f"    {route.name:<24} {outcome.summary()}")


def ingest(spark, settings: Settings, survey: str, label: str, records) -> None:
    """Run the archive service over the science archive of ``settings``; print its rates."""
    from fink_broker.services import archive

    alerts = spark.read.parquet(Lake(settings.paths.root, survey).science).count()
    metrics = Path(settings.paths.state_dir) / "metrics" / "archive.jsonl"
    seen = len(metrics.read_text().splitlines()) if metrics.exists() else 0
    pids = [psutil.Process().pid, *(r.pid for r in records)]
    with PeakRss(pids) as rss:
        t0 = time.perf_counter()
        query = archive.start(settings, spark)
        query.awaitTermination()
        seconds = time.perf_counter() - t0
    batches = [json.loads(line) for line in metrics.read_text().splitlines()[seen:]]
    written = sum(sum(b["detail"]["tables"].values()) for b in batches)
    archived = sum(b["rows_out"] for b in batches)
    assert archived == alerts, (archived, alerts)
    print(
        f"(a) archive, {label}: {alerts:,} alerts in {seconds:,.1f} s = "
        f"{alerts / seconds:,.0f} alerts/s, {written / seconds:,.0f} HBase rows/s "
        f"({written / alerts:.1f} rows per alert over every table)"
    )
    peaks = ", ".join(f"{r.name} {rss.peak[r.pid] / 2**20:,.0f} MiB" for r in records)
    print(f"    peak RSS: Spark driver+workers {rss.peak[pids[0]] / 2**20:,.0f} MiB, {peaks}")
    print(f"    the writer spends {1e6 * seconds / max(written, 1):.0f} us per HBase row in all")


#: the run's settings overrides, saved in the scratch folder for ``--api-only``
OVERRIDES = "overrides.json"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--survey", choices=["ztf", "rubin"], default="ztf")
    parser.add_argument("--nalerts", type=int, default=1_000_000)
    parser.add_argument("--epochs", type=int, default=10, help="alerts per object")
    parser.add_argument(
        "--dense-fraction",
        type=float,
        default=0.02,
        help="objects in the 1 degree crowded field (0.02 of 100,000 objects: ~2,000)",
    )
    parser.add_argument(
        "--cutout-alerts",
        type=int,
        default=20_000,
        help="alerts of the extra run that stores cutouts (0: skip)",
    )
    parser.add_argument("--clients", type=int, default=20, help="concurrent API clients")
    parser.add_argument("--requests", type=int, default=400, help="API requests per route")
    parser.add_argument("--datasim", default=str(REPO.parent / "shared" / "datasim"))
    parser.add_argument("--api-only", help="scratch folder of a --keep run: measure (c) only")
    add_keep_option(parser)
    args = parser.parse_args()

    if args.api_only:
        tmp = Path(args.api_only)
        saved = json.loads((tmp / OVERRIDES).read_text())
        overrides, survey = saved["overrides"], saved["survey"]
    else:
        tmp = scratch_folder("fink-bench-archive-", args.keep)
        zookeeper, master, regionserver, thrift = (free_port() for _ in range(4))
        survey = args.survey
        overrides = {
            **scratch_paths(tmp, REPO),
            "stream2raw.survey": survey,
            "raw2science.trigger": "availableNow",
            "raw2science.ztf_rb_min": 0.0,
            "raw2science.rubin_reliability_min": 0.0,
            "archive.trigger": "availableNow",
            "archive.cutouts": False,
            "local_hbase.zookeeper_port": zookeeper,
            "local_hbase.master_port": master,
            "local_hbase.regionserver_port": regionserver,
            "hbase.thrift_port": thrift,
            "hbase.namespace": "bench",
        }
        (tmp / OVERRIDES).write_text(json.dumps({"overrides": overrides, "survey": survey}))
    settings = load_settings(None, env={}, overrides=overrides)
    cut = copy.deepcopy(settings)  # the cutout run: its own lake and tables
    cut.archive.cutouts = True
    cut.hbase.namespace = "benchcut"
    cut.paths.root = str(tmp / "cutlake")
    cut.paths.state_dir = str(tmp / "cutstate")

    from fink_broker.engine.session import get_session

    # HBase first: the ports picked above are free until Spark's driver takes ephemeral ones
    records = hbase_local.start_hbase(settings)
    spark = get_session(settings, app_name="fink-bench-archive")
    try:
        if not args.api_only:
            folder = Path(args.datasim) / survey
            real = science_of_real_alerts(spark, settings, survey, folder)
            lake = Lake(settings.paths.root, survey)
            big = multiplied(real, survey, args.nalerts, args.epochs, args.dense_fraction)
            staged = str(tmp / "big")
            without_cutouts(big).repartition(32).write.partitionBy("night").parquet(staged)
            if args.cutout_alerts:
                target = Lake(cut.paths.root, survey).science
                subset = multiplied(real, survey, args.cutout_alerts, args.epochs, 0.0)
                subset.repartition(4).write.partitionBy("night").parquet(target)
            shutil.rmtree(lake.science)
            shutil.move(staged, lake.science)
            n = spark.read.parquet(lake.science).count()
            print(f"{survey}: science archive of {n:,} alerts ({args.epochs} per object)")
            ingest(spark, settings, survey, "no cutouts", records)
            if args.cutout_alerts:
                ingest(spark, cut, survey, "with cutouts", records)
            micro, rows = python_share(spark, settings, survey)
            print(f"(b) Python pairing loop: {micro:.1f} us per HBase row ({rows} rows)")
        api_latency(spark, settings, survey, args.clients, args.requests)
        cut_lake = Path(Lake(cut.paths.root, survey).science)
        if cut_lake.exists():
            from fink_broker.engine.canonical import canonical_columns

            cut_science = spark.read.parquet(str(cut_lake))
            alert_id = canonical_columns(cut_science, survey, ["alertId"])["alertId"]
            ids = [str(r[0]) for r in cut_science.select(alert_id).limit(5000).collect()]
            cutout_latency(cut, survey, args.clients, args.requests, ids)
    finally:
        hbase_local.stop_hbase(settings)
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
