"""Benchmark: stream2raw drain rate on local[2] versus the bare-Python decode limit.

Replays >= 20,000 real alerts (the datasim files repeated with fresh ids and distinct cutout
pixels, see ``simulator.stamps``) into a local Kafka broker, then prints:
  (a) the bare-Python decode rate of the same messages with fastavro on one core,
  (b) the stream2raw drain rate (Kafka -> decoded -> raw Parquet + quarantine) on local[2],
      and the size of the raw archive it wrote,
  (c) their ratio (b / a),
  (d) peak RSS of the JVM and of the Python worker processes during the drain,
  (e) where the two cores went during the warm drains: CPU time of the Spark JVM (and per
      alert), of the local Kafka broker that serves the messages, of Python, and idle,
  (f) with --floor, the floor under (b): the two parts stream2raw cannot do without, timed
      alone, taking turns with the warm drains: Spark's Kafka source (the same query into
      a noop sink) and Spark's Parquet writer (the raw archive read and written again,
      less the read alone). Their JVM CPU per alert adds up to the least a drain costs
      with a decoder that cost nothing, hence the most alerts/s the cores allow.
The first drain is "cold" (fresh JVM: its code not yet compiled, first Python workers);
--warm-rounds more drains of the same topic into an empty archive, in the same session,
give the rate of a stream2raw that has been running for a while (median).

    .venv/bin/python benchmarks/stream2raw.py --survey ztf --nalerts 20000
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import fastavro
import numpy as np
import psutil
from confluent_kafka import Consumer, TopicPartition

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))

from benchmarks.cpu_account import CpuAccount  # noqa: E402
from benchmarks.rounds import alternating_rounds  # noqa: E402
from benchmarks.scratch import add_keep_option, scratch_folder, scratch_paths  # noqa: E402

from fink_broker.config import Settings, load_settings  # noqa: E402
from fink_broker.infra import kafka_local, processes  # noqa: E402
from fink_broker.lake import Lake  # noqa: E402
from fink_broker.simulator.replay import replay  # noqa: E402
from fink_broker.surveys.rubin import lsst_schema  # noqa: E402

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def add_spark_conf_option(parser: argparse.ArgumentParser) -> None:
    """``--spark-conf KEY=VALUE`` (repeatable): compare a Spark setting in a benchmark."""
    parser.add_argument(
        "--spark-conf",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra Spark property for the session (repeatable), to compare settings",
    )


def spark_extra(values: list[str]) -> dict[str, str]:
    """The ``spark.extra`` setting of ``--spark-conf`` values."""
    return dict(kv.split("=", 1) for kv in values)


def fetch_messages(bootstrap: str, topic: str, expected: int) -> list[bytes]:
    """Every message of ``topic`` (all partitions, from the start), as bytes."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "bench", "enable.auto.commit": False}
    )
    meta = consumer.list_topics(topic, timeout=30).topics[topic]
    consumer.assign([TopicPartition(topic, p, 0) for p in meta.partitions])
    out: list[bytes] = []
    deadline = time.monotonic() + 300
    while len(out) < expected and time.monotonic() < deadline:
        for msg in consumer.consume(1000, timeout=1.0):
            if msg.error() is None:
                out.append(msg.value())
    consumer.close()
    return out


def _read_long(buf: bytes, pos: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            return (n >> 1) ^ -(n & 1), pos
        shift += 7


def container_payload(message: bytes) -> tuple[bytes, bytes]:
    """(schema JSON bytes, record bytes) of a one-record Avro container (null codec)."""
    pos, schema = 4, b""
    while True:
        count, pos = _read_long(message, pos)
        if count == 0:
            break
        if count < 0:
            count = -count
            _, pos = _read_long(message, pos)
        for _ in range(count):
            klen, pos = _read_long(message, pos)
            key = message[pos : pos + klen]
            pos += klen
            vlen, pos = _read_long(message, pos)
            if key == b"avro.schema":
                schema = message[pos : pos + vlen]
            pos += vlen
    pos += 16
    _, pos = _read_long(message, pos)
    size, pos = _read_long(message, pos)
    return schema, message[pos : pos + size]


def bare_python_rate(survey: str, messages: list[bytes]) -> tuple[float, float]:
    """Alerts/s decoding ``messages`` in this process: (fastavro.reader, cached schema)."""
    t0 = time.perf_counter()
    for m in messages:
        if survey == "ztf":
            next(fastavro.reader(io.BytesIO(m)))
        else:
            break
    naive = len(messages) / (time.perf_counter() - t0) if survey == "ztf" else float("nan")
    schemas: dict[bytes, object] = {}
    rubin = {}
    t0 = time.perf_counter()
    for m in messages:
        if survey == "ztf":
            text, body = container_payload(m)
            parsed = schemas.get(text)
            if parsed is None:
                parsed = schemas[text] = fastavro.parse_schema(json.loads(text))
        else:
            (schema_id,) = struct.unpack(">I", m[1:5])
            parsed = rubin.get(schema_id)
            if parsed is None:
                parsed = rubin[schema_id] = lsst_schema(schema_id).parsed
            body = m[5:]
        fastavro.schemaless_reader(io.BytesIO(body), parsed)
    cached = len(messages) / (time.perf_counter() - t0)
    return naive, cached


class PeakMemory:
    """Samples RSS of the JVM and of Spark's Python workers below this process."""

    def __init__(self) -> None:
        self.jvm = 0
        self.workers = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            jvm = workers = 0
            for child in me.children(recursive=True):
                try:
                    name = " ".join(child.cmdline()[:3])
                    rss = child.memory_info().rss
                except psutil.Error:
                    continue
                if "java" in name:
                    jvm += rss
                elif "pyspark" in name or "python" in name:
                    workers += rss
            self.jvm = max(self.jvm, jvm)
            self.workers = max(self.workers, workers)
            time.sleep(0.2)


def cpu_report(cpu: CpuAccount, cores: int, alerts: int) -> str:
    """One line: cores used by each kind of process, idle, and the Spark JVM's CPU per
    alert. The idle share is what batch boundaries and stragglers leave unused."""
    used = {kind: seconds / cpu.seconds for kind, seconds in cpu.used.items()}
    idle = max(0.0, cores - sum(used.values()))
    python = used.get("Spark driver (Python)", 0.0) + used.get("Python workers", 0.0)
    per_alert = 1e3 * cpu.used.get("Spark JVM", 0.0) / alerts
    return (
        f"Spark JVM {used.get('Spark JVM', 0.0):.2f} cores ({per_alert:.2f} ms CPU per alert),"
        f" Kafka broker {used.get('Kafka broker', 0.0):.2f}, Python {python:.2f},"
        f" idle {idle:.2f} of {cores}"
    )


def _steady_rate(settings: Settings) -> float | None:
    """Alerts/s over the micro-batches after the first, from stream2raw's metrics log."""
    path = Path(settings.paths.state_dir) / "metrics" / "stream2raw.jsonl"
    batches = [json.loads(line) for line in path.read_text().splitlines()][1:]
    seconds = sum(b["duration_s"] for b in batches)
    return sum(b["rows_in"] for b in batches) / seconds if seconds else None


def accounted(run: Callable[[int], None], accounts: list[CpuAccount]) -> Callable[[int], None]:
    """``run``, counting the CPU of each call in a new account appended to ``accounts``."""

    def counted(round_: int) -> None:
        with CpuAccount() as account:
            run(round_)
        accounts.append(account)

    return counted


class FloorParts:
    """The parts of a drain that no decoder can remove, each run alone (``--floor``).

    - Spark's Kafka source: the stream2raw query's source (same options, same trigger, a
      ``foreachBatch`` with the same task count) into a noop sink, which still copies each
      message into a Spark row.
    - Spark's Parquet writer: the cold drain's raw archive read and written again as
      stream2raw writes it (Fink's column options, night partitions, exactly-once commit);
      the read alone (noop sink) is timed too, to be taken off.
    """

    KAFKA, WRITE, READ = "Kafka source alone", "archive read + written", "archive read alone"

    def __init__(self, spark: SparkSession, settings: Settings, lake: Lake, folder: Path) -> None:
        self.spark, self.settings, self.folder = spark, settings, folder
        self.tasks = spark.sparkContext.defaultParallelism
        self.reference = str(folder / "raw")
        shutil.copytree(lake.raw, self.reference, ignore=shutil.ignore_patterns("_spark_metadata"))
        self.runs = {self.KAFKA: self.kafka_alone, self.WRITE: self.rewrite, self.READ: self.read}
        self.prepare = {self.KAFKA: self.clear, self.WRITE: self.clear}

    def clear(self, _round: int) -> None:
        for name in ("checkpoint", "rewritten"):
            shutil.rmtree(self.folder / name, ignore_errors=True)

    def kafka_alone(self, _round: int) -> None:
        from fink_broker.engine.triggers import trigger_kwargs
        from fink_broker.services.stream2raw import kafka_source

        def noop(batch: DataFrame, _batch_id: int) -> None:
            batch.coalesce(self.tasks).write.format("noop").mode("overwrite").save()

        topic = self.settings.stream2raw.topic
        query = (
            kafka_source(self.spark, self.settings, topic)
            .writeStream.foreachBatch(noop)
            .option("checkpointLocation", str(self.folder / "checkpoint"))
            .trigger(**trigger_kwargs(self.settings.stream2raw.trigger))
            .start()
        )
        query.awaitTermination()

    def rewrite(self, _round: int) -> None:
        from fink_broker.engine.sinks import write_batch

        archive = self.spark.read.parquet(self.reference).coalesce(self.tasks)
        write_batch(self.spark, archive, str(self.folder / "rewritten"), 0, ["night"])

    def read(self, _round: int) -> None:
        archive = self.spark.read.parquet(self.reference).coalesce(self.tasks)
        archive.write.format("noop").mode("overwrite").save()


def floor_report(
    accounts: dict[str, list[CpuAccount]], seconds: dict[str, list[float]], alerts: int, cores: int
) -> str:
    """(f): JVM CPU per alert of each floor part and of the drain (medians over the rounds),
    the floor they add up to, and the rate it allows on ``cores``."""

    def ms(name: str) -> float:
        per_round = [a.used.get("Spark JVM", 0.0) for a in accounts[name]]
        return 1e3 * float(np.median(per_round)) / alerts

    kafka, write, read = ms(FloorParts.KAFKA), ms(FloorParts.WRITE), ms(FloorParts.READ)
    writer, drain = write - read, ms("drain")
    floor = kafka + writer
    # the parts alone can cost more than inside a drain (an uncompressed archive: 2.4 GB
    # of Rubin alerts read and written again, against the drain's write alone)
    above = (
        f"{drain - floor:.3f} ms above the floor"
        if drain >= floor
        else f"{floor - drain:.3f} ms below it: the parts cost more alone, no floor here"
    )
    return "\n".join(
        [
            f"(f) floor, Spark JVM CPU per alert (medians of {len(accounts['drain'])} rounds):",
            f"    Spark's Kafka source alone (noop sink): {kafka:.3f} ms"
            f" ({alerts / np.median(seconds[FloorParts.KAFKA]):,.0f} alerts/s)",
            f"    Spark's Parquet writer alone: {writer:.3f} ms (archive read and written"
            f" again {write:.3f} ms, less the read alone {read:.3f} ms)",
            f"    floor {floor:.3f} ms: at most {1e3 * cores / floor:,.0f} alerts/s on {cores}"
            f" cores with a decoder that cost nothing; stream2raw's drain {drain:.3f} ms,"
            f" {above}",
        ]
    )


#: the versions of a mixed stream, and whether the simulator re-shapes the datasim alerts
#: into each (the first of each survey goes out as published)
MIXED_VERSIONS = {
    "ztf": (("3.3", False), ("4.02", True)),
    "rubin": (("9.0", False), ("7.4", True), ("10.0", True), ("11.1", True)),
}


class MixedVersions:
    """(g): the same number of alerts, in every schema version, on a topic of their own.

    The datasim files are dealt round-robin into one folder per version (links), and each
    folder is replayed as that version with fresh ids until the topic holds ``nalerts``.
    """

    def __init__(self, settings: Settings, args: argparse.Namespace, folder: Path, tmp: Path):
        self.settings = settings
        self.topic = f"{settings.stream2raw.topic}_mixed"
        versions = MIXED_VERSIONS[args.survey]
        folders = [tmp / v for v, _ in versions]
        for sub in folders:
            sub.mkdir(parents=True)
        for i, path in enumerate(sorted(folder.glob("*.avro"))):
            (folders[i % len(folders)] / path.name).symlink_to(path)
        per = args.nalerts // len(versions)
        self.alerts = 0
        for sub, (version, reshaped) in zip(folders, versions, strict=True):
            files = len(list(sub.glob("*.avro")))
            summary = replay(
                settings,
                survey=args.survey,
                folder=sub,
                topic=self.topic,
                repeat=-(-per // files),
                nalerts=per,
                partitions=args.partitions,
                schema_version=version if reshaped else None,
            )
            self.alerts += summary.alerts
        self.versions = [v for v, _ in versions]
        print(f"replayed the mixed stream: {self.alerts} alerts of {', '.join(self.versions)}")

    def drain_with(self, drain: Callable[[int], None]) -> Callable[[int], None]:
        """``drain``, on the mixed topic."""

        def mixed(round_: int) -> None:
            single = self.settings.stream2raw.topic
            self.settings.stream2raw.topic = self.topic
            try:
                drain(round_)
            finally:
                self.settings.stream2raw.topic = single

        return mixed

    def report(self, seconds: dict[str, list[float]], rows: int, mixed_rows: int) -> str:
        """(g): both warm rates and their ratio, round by round."""
        single = float(np.median(seconds["drain"]))
        mixed = float(np.median(seconds["mixed"]))
        per_round = ", ".join(
            f"{(mixed_rows / m) / (rows / s):.2f}"
            for s, m in zip(seconds["drain"], seconds["mixed"], strict=True)
        )
        return (
            f"(g) mixed versions ({', '.join(self.versions)}): {mixed_rows:,} rows, warm median"
            f" {mixed_rows / mixed:,.0f} alerts/s against {rows / single:,.0f}/s for one"
            f" version: {mixed_rows / mixed / (rows / single):.2f} of it (per round {per_round})"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--survey", choices=["ztf", "rubin"], default="ztf")
    parser.add_argument("--nalerts", type=int, default=20000)
    add_spark_conf_option(parser)
    parser.add_argument("--datasim", default=str(REPO.parent / "shared" / "datasim"))
    parser.add_argument("--max-offsets-per-trigger", type=int, default=5000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--warm-rounds", type=int, default=2, help="drains after the first")
    parser.add_argument(
        "--floor",
        action="store_true",
        help="(f): time Spark's Kafka source and Parquet writer alone, in turns with the"
        " warm drains, for the floor under stream2raw's drain rate",
    )
    parser.add_argument(
        "--mixed-versions",
        action="store_true",
        help="(g): also drain a stream of the same alerts in every schema version (ZTF 3.3 and"
        " 4.02; Rubin v7.4, v9.0, v10.0, v11.1), in turns with the single-version drains",
    )
    add_keep_option(parser)
    args = parser.parse_args()

    tmp = scratch_folder("fink-bench-", args.keep)
    port, controller = free_port(), free_port()
    settings: Settings = load_settings(
        None,
        env={},
        overrides={
            **scratch_paths(tmp, REPO),
            "local_kafka.port": port,
            "local_kafka.controller_port": controller,
            "kafka.bootstrap_servers": f"127.0.0.1:{port}",
            "stream2raw.survey": args.survey,
            "stream2raw.topic": f"bench_{args.survey}",
            "stream2raw.trigger": "availableNow",
            "stream2raw.max_offsets_per_trigger": args.max_offsets_per_trigger,
            "spark.extra": spark_extra(args.spark_conf),
        },
    )
    kafka_local.start_kafka(settings)
    try:
        folder = Path(args.datasim) / args.survey
        n_files = len(list(folder.glob("*.avro")))
        summary = replay(
            settings,
            survey=args.survey,
            folder=folder,
            topic=settings.stream2raw.topic,
            repeat=-(-args.nalerts // n_files),
            nalerts=args.nalerts,
            partitions=args.partitions,
        )
        print(f"replayed: {summary.format()}")
        messages = fetch_messages(
            settings.kafka.bootstrap_servers, settings.stream2raw.topic, summary.alerts
        )
        mb = sum(len(m) for m in messages) / 1e6
        naive, cached = bare_python_rate(args.survey, messages)
        del messages

        from fink_broker.engine.session import get_session
        from fink_broker.services import stream2raw

        spark = get_session(settings, app_name="fink-bench")
        lake = Lake(settings.paths.root, args.survey)

        def empty_archive(_round: int = 0) -> None:
            for folder_ in (lake.raw, lake.quarantine, lake.checkpoint("stream2raw")):
                shutil.rmtree(folder_, ignore_errors=True)
            metrics = Path(settings.paths.state_dir) / "metrics" / "stream2raw.jsonl"
            metrics.unlink(missing_ok=True)

        def drain(_round: int = 0) -> None:
            """One bounded stream2raw run (into an empty archive)."""
            stream2raw.start(settings, spark).awaitTermination()

        empty_archive()
        with PeakMemory() as peak:
            t0 = time.perf_counter()
            drain()
            drain_s = time.perf_counter() - t0
        rows = spark.read.parquet(lake.raw).count()
        steady = _steady_rate(settings)
        raw_mb = sum(f.stat().st_size for f in Path(lake.raw).rglob("*.parquet")) / 1e6
        runs, prepare = {"drain": drain}, {"drain": empty_archive}
        if args.mixed_versions:
            mixed = MixedVersions(settings, args, folder, tmp / "versions")
            runs["mixed"] = mixed.drain_with(drain)
            prepare["mixed"] = empty_archive
        if args.floor:
            floor = FloorParts(spark, settings, lake, tmp / "floor")
            runs.update(floor.runs)
            prepare.update(floor.prepare)
        accounts: dict[str, list[CpuAccount]] = {name: [] for name in runs}
        seconds = alternating_rounds(
            {name: accounted(run, accounts[name]) for name, run in runs.items()},
            args.warm_rounds,
            prepare,
        )
        warm = seconds["drain"]
        cpu = CpuAccount.total(accounts["drain"])
        rate = rows / drain_s
        naive_text = "" if args.survey != "ztf" else f"; {naive:,.0f}/s with fastavro.reader"
        print()
        print(f"survey {args.survey}: {summary.alerts} alerts, {mb:.0f} MB on Kafka")
        print(f"(a) bare Python, 1 core: {cached:,.0f} alerts/s (cached schema){naive_text}")
        print(f"(b) stream2raw local[2], cold: {rows:,} rows in {drain_s:.1f} s = {rate:,.0f}/s")
        print(f"    raw archive: {raw_mb:,.0f} MB, {1e3 * raw_mb / rows:.1f} kB per alert")
        if steady:
            print(f"    cold, after its first micro-batch: {steady:,.0f} alerts/s")
        if warm:
            warm_s = float(np.median(warm))
            print(
                f"    warm, median of {len(warm)} drains ({', '.join(f'{w:.1f}' for w in warm)} s):"
                f" {rows / warm_s:,.0f} alerts/s (ratio to (a) {rows / warm_s / cached:.2f})"
            )
        print(f"(c) ratio (b)/(a), cold: {rate / cached:.2f}")
        jvm_mib, workers_mib = peak.jvm / 2**20, peak.workers / 2**20
        print(
            f"(d) peak RSS, cold drain: JVM {jvm_mib:,.0f} MiB,"
            f" Python workers {workers_mib:,.0f} MiB"
        )
        if warm:
            cores = psutil.cpu_count() or 1
            print(f"(e) CPU, warm drains: {cpu_report(cpu, cores, rows * len(warm))}")
        if args.floor and warm:
            print(floor_report(accounts, seconds, rows, cores))
        if args.mixed_versions and warm:
            print(mixed.report(seconds, rows, spark.read.parquet(lake.raw).count()))
        spark.stop()
    finally:
        processes.stop(settings, "kafka", timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
