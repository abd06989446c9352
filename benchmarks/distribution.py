"""Benchmark: end-to-end latency with stream2raw, raw2science and distribution running live.

The simulator publishes real alerts (repeated with fresh ids and distinct cutout pixels) at a
steady rate; the three services run as three streaming queries of one Spark application (the
laptop mode) with 1-second triggers. For every published alert the latency is the output
message's Kafka timestamp minus the input message's Kafka timestamp (``kafka_timestamp``). Prints
p50/p95/p99 latency and the distribution service's own rate (alerts/s from science Parquet
to topics, from its per-batch metrics).

The latency is measured over ``--seconds`` after ``--warm-seconds`` of the same live load:
on a fresh JVM, Spark's code runs interpreted while the JIT compiles it, which takes two to
three minutes of this load and most of a core; a night lasts hours. The first minute of the
warm-up is printed too, as what a restart costs.

The quality cuts are the service defaults (about 1 ZTF alert in 5 of the real sample passes);
--no-cuts lets every alert through to the modules and filters, the heaviest load.

    .venv/bin/python benchmarks/distribution.py --survey ztf --rate 250 --seconds 60
    .venv/bin/python benchmarks/distribution.py --survey rubin --mode pipeline

``--mode pipeline`` runs `fink start pipeline`'s one query instead of the three: each
micro-batch decoded once, every stage on it in memory.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import fastavro
import numpy as np
from confluent_kafka import Consumer, TopicPartition

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))

from benchmarks.cpu_account import CpuAccount  # noqa: E402
from benchmarks.scratch import add_keep_option, scratch_folder, scratch_paths  # noqa: E402
from benchmarks.stream2raw import (  # noqa: E402
    add_spark_conf_option,
    free_port,
    spark_extra,
)

from fink_broker.config import Settings, dump_toml, load_settings  # noqa: E402
from fink_broker.infra import kafka_local, processes  # noqa: E402
from fink_broker.plugins.filters import topic_name  # noqa: E402
from fink_broker.simulator.replay import replay  # noqa: E402
from fink_broker.surveys import get_adapter  # noqa: E402

#: how the stages run: three queries of one application, or the one-pass pipeline
MODES = ("separate", "pipeline")
#: the times an outgoing alert carries, in pipeline order, after its Kafka input timestamp
STAGE_TIMES = ("fink_ingest_time", "processing_start", "processing_end")


def output_latencies(
    settings: Settings, topics: list[str], since_ms: int, until_ms: float = np.inf
) -> np.ndarray:
    """Per message published for an alert ingested in [``since_ms``, ``until_ms``): seconds from the
    input Kafka timestamp to each of :data:`STAGE_TIMES` and to the output Kafka timestamp
    (one row per message, ``len(STAGE_TIMES) + 1`` columns; NaN where a time is absent)."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "group.id": "bench-latency",
            "enable.auto.commit": False,
        }
    )
    schemas: dict[bytes, object] = {}
    out: list[list[float]] = []
    try:
        for topic in topics:
            meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
            if meta is None or meta.error is not None:
                continue
            parts = [TopicPartition(topic, p, 0) for p in meta.partitions]
            ends = sum(consumer.get_watermark_offsets(tp)[1] for tp in parts)
            consumer.assign(parts)
            seen = 0
            while seen < ends:
                batch = consumer.consume(1000, timeout=5)
                if not batch:
                    break
                for msg in batch:
                    seen += 1
                    parsed = schemas.get(msg.key())
                    if parsed is None:
                        parsed = schemas[msg.key()] = fastavro.parse_schema(json.loads(msg.key()))
                    record = fastavro.schemaless_reader(io.BytesIO(msg.value()), parsed)
                    ingested = record["kafka_timestamp"].timestamp()
                    if not since_ms <= ingested * 1000 < until_ms:
                        continue
                    stages = [record.get(name) for name in STAGE_TIMES]
                    out.append(
                        [np.nan if t is None else t.timestamp() - ingested for t in stages]
                        + [msg.timestamp()[1] / 1000 - ingested]
                    )
    finally:
        consumer.close()
    return np.array(out).reshape(-1, len(STAGE_TIMES) + 1)


def percentiles(seconds: np.ndarray) -> str:
    """p50, p95 and p99 of ``seconds``, as printed."""
    p50, p95, p99 = np.percentile(seconds, [50, 95, 99])
    return f"p50 {p50:.1f} s, p95 {p95:.1f} s, p99 {p99:.1f} s"


def live_batches(settings: Settings, service: str, since_iso: str) -> list[dict]:
    """The metrics of the micro-batches of ``service`` that began after ``since_iso``."""
    path = Path(settings.paths.state_dir) / "metrics" / f"{service}.jsonl"
    if not path.exists():
        return []
    batches = [json.loads(line) for line in path.read_text().splitlines()]
    return [b for b in batches if b["time"] >= since_iso]


def batch_summary(settings: Settings, service: str, since_iso: str) -> str:
    """Micro-batches of ``service`` that began after ``since_iso``: count, rows and duration."""
    live = live_batches(settings, service, since_iso)
    if not live:
        return f"{service}: no live micro-batch"
    rows = np.array([b["rows_in"] for b in live])
    took = np.array([b["duration_s"] for b in live])
    return (
        f"{service}: {len(live)} micro-batches, rows in p50 {np.median(rows):.0f} max {rows.max()},"
        f" duration p50 {np.median(took):.2f} s p95 {np.percentile(took, 95):.2f} s"
        f" max {took.max():.2f} s, busy {took.sum():.0f} s"
    )


def stage_summary(settings: Settings, since_iso: str) -> str:
    """The one-pass pipeline's micro-batches after ``since_iso``: p50 seconds per stage."""
    live = live_batches(settings, "pipeline", since_iso)
    stages: dict[str, list[float]] = {}
    for batch in live:
        for name, seconds in batch["detail"]["stages_s"].items():
            stages.setdefault(name, []).append(seconds)
    text = ", ".join(f"{name} {np.median(s):.2f}" for name, s in stages.items())
    return f"pipeline stages, p50 s per micro-batch: {text or 'none'}"


class JvmCompilations:
    """Code the Spark JVM compiled between construction and :meth:`stop`: classes Spark
    generated and compiled with Janino (a codegen cache miss each), and the JIT's time.

    A live stream that keeps compiling pays for it on every micro-batch: the generated
    code of a wide alert plan costs 10-100 ms per class, and the JIT then compiles it.
    """

    def __init__(self, spark: object) -> None:
        jvm = spark.sparkContext._jvm
        self._janino = jvm.org.apache.spark.metrics.source.CodegenMetrics.METRIC_COMPILATION_TIME()
        self._jit = jvm.java.lang.management.ManagementFactory.getCompilationMXBean()
        self._start = self._counts()
        self.classes = 0
        self.jit_s = 0.0

    def _counts(self) -> tuple[int, float]:
        return self._janino.getCount(), self._jit.getTotalCompilationTime() / 1000

    def stop(self) -> None:
        end = self._counts()
        self.classes = end[0] - self._start[0]
        self.jit_s = end[1] - self._start[1]

    def __str__(self) -> str:
        return (
            f"Spark JVM over the live phase: {self.classes} Janino compilations "
            f"(codegen cache misses), {self.jit_s:.0f} s in the JIT compilers"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--survey", choices=["ztf", "rubin"], default="ztf")
    parser.add_argument("--rate", type=float, default=250.0, help="alerts/s from the simulator")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the live phase")
    parser.add_argument(
        "--warm-seconds",
        type=float,
        default=180.0,
        help="live, unmeasured phase first, while the JIT compiles the services' hot code "
        "(default: 180; 0 measures a cold JVM)",
    )
    parser.add_argument(
        "--java-option",
        action="append",
        default=[],
        help="an option of the Spark JVM, after spark.java_options (repeatable)",
    )
    parser.add_argument(
        "--trigger", default="1 second", help="processing-time trigger of the three services"
    )
    parser.add_argument("--jfr", help="record a Java Flight Recording of the Spark JVM here")
    parser.add_argument("--no-cuts", action="store_true", help="every alert to the filters")
    parser.add_argument(
        "--mode",
        choices=MODES,
        default="separate",
        help="separate: the three services as three queries; pipeline: `fink start "
        "pipeline`'s one query (default: separate)",
    )
    add_spark_conf_option(parser)
    parser.add_argument("--datasim", default=str(REPO.parent / "shared" / "datasim"))
    add_keep_option(parser)
    args = parser.parse_args()

    tmp = scratch_folder("fink-bench-dist-", args.keep)
    port, controller = free_port(), free_port()
    topic = f"bench_{args.survey}"
    base = {
        **scratch_paths(tmp, REPO),
        "local_kafka.port": port,
        "local_kafka.controller_port": controller,
        "kafka.bootstrap_servers": f"127.0.0.1:{port}",
        "stream2raw.survey": args.survey,
        "stream2raw.topic": topic,
        "stream2raw.max_offsets_per_trigger": 2000,
        "raw2science.max_files_per_trigger": 20,
        "distribution.max_files_per_trigger": 20,
        "spark.extra": spark_extra(args.spark_conf),
    }
    java_options = [Settings().spark.java_options, *args.java_option]
    if args.jfr:
        # deep stacks: Spark's analyzer recursion is cut at JFR's default depth of 64
        java_options.append("-XX:StartFlightRecording=settings=profile")
        java_options.append("-XX:FlightRecorderOptions:stackdepth=2048")
    base["spark.java_options"] = " ".join(java_options)
    if args.no_cuts:
        base.update({"raw2science.ztf_rb_min": 0.0, "raw2science.rubin_reliability_min": 0.0})
    bounded = {
        **base,
        "stream2raw.trigger": "availableNow",
        "raw2science.trigger": "availableNow",
        "distribution.trigger": "availableNow",
    }
    live = {
        **base,
        "stream2raw.trigger": args.trigger,
        "raw2science.trigger": args.trigger,
        "distribution.trigger": args.trigger,
    }
    folder = Path(args.datasim) / args.survey
    settings = load_settings(None, env={}, overrides=bounded)
    kafka_local.start_kafka(settings)
    try:
        from fink_broker.engine.session import get_session
        from fink_broker.services import distribution, pipeline, raw2science, stream2raw

        spark = get_session(settings, app_name="fink-bench-dist")
        services = (stream2raw, raw2science, distribution)
        if args.mode == "pipeline":
            services = (pipeline,)
        # warm-up: one bounded pass creates the archives the live file sources start from
        replay(settings, survey=args.survey, folder=folder, topic=topic)
        for service in services:
            service.start(settings, spark).awaitTermination()

        live_settings = load_settings(None, env={}, overrides=live)
        queries = [s.start(live_settings, spark) for s in services]
        n_files = len(list(folder.glob("*.avro")))
        n_alerts = int(args.rate * (args.warm_seconds + args.seconds))
        # the simulator in its own process, as a survey's stream is: in this process its
        # Avro encoding would hold the GIL that the services' batch callbacks need
        config = tmp / "fink.toml"
        config.write_text(dump_toml(live_settings))
        simulator = [
            sys.executable,
            "-m",
            "fink_broker.simulator.cli",
            "-c",
            str(config),
            *("--survey", args.survey, "--datasim", str(folder), "--topic", topic),
            *("--nalerts", str(n_alerts), "--repeat", str(1 + -(-n_alerts // n_files))),
            *("--rate", str(args.rate)),
        ]
        publishing = subprocess.Popen(simulator, stdout=subprocess.DEVNULL)
        live_ms = int(time.time() * 1000)
        # the services run live, unmeasured, while the JVM compiles its hot code
        time.sleep(args.warm_seconds)
        since_ms = int(time.time() * 1000)
        since_iso = datetime.now(UTC).isoformat(timespec="seconds")
        compiled = JvmCompilations(spark)
        with CpuAccount() as cpu:
            if publishing.wait() != 0:
                raise RuntimeError(f"the simulator failed: {publishing.returncode}")
            time.sleep(30)  # let the last micro-batches of the three queries finish
        compiled.stop()
        progress = {
            q.name: [
                p
                for p in q.recentProgress
                if "addBatch" in p["durationMs"] and p["timestamp"] >= since_iso
            ]
            for q in queries
        }
        for query in queries:
            query.stop()

        suffix = get_adapter(args.survey).topic_suffix
        topics = [
            topic_name(f, suffix) for f in distribution.selected_filters(settings, args.survey)
        ]
        table = output_latencies(settings, topics, since_ms)
        latencies = table[:, -1]
        metrics = live_batches(settings, "distribution", since_iso)
        rows = sum(m["rows_in"] for m in metrics)
        seconds = sum(m["duration_s"] for m in metrics)
        print()
        cuts = "no quality cuts" if args.no_cuts else "default quality cuts"
        print(
            f"survey {args.survey}, {args.mode} mode: {n_alerts} alerts at {args.rate:.0f}/s, "
            f"{cuts}; measured after {args.warm_seconds:.0f} s of live warm-up"
        )
        print(f"topics {topics}")
        if len(latencies):
            print(
                f"latency input -> output topic over {len(latencies)} messages: "
                f"{percentiles(latencies)}, max {latencies.max():.1f} s"
            )
            print("  where the time goes, p50 seconds after the input Kafka timestamp:")
            for i, name in enumerate((*STAGE_TIMES, "output Kafka timestamp")):
                column = table[:, i][~np.isnan(table[:, i])]
                if len(column):
                    print(f"    {name:24s} {np.median(column):6.1f} s")
        else:
            print("no output message in the live phase")
        if args.warm_seconds:
            # the same services on a JVM that has not compiled its hot code yet
            first = min(args.warm_seconds, 60.0)
            cold = output_latencies(settings, topics, live_ms, live_ms + first * 1000)[:, -1]
            if len(cold):
                print(
                    f"  the first {first:.0f} s of the warm-up, for comparison ({len(cold)} "
                    f"messages): {percentiles(cold)}"
                )
        for service in ("stream2raw", "raw2science", "distribution"):
            print("  " + batch_summary(settings, service, since_iso))
        if args.mode == "pipeline":
            print("  " + batch_summary(settings, "pipeline", since_iso))
            print("  " + stage_summary(settings, since_iso))
        for name, reports in progress.items():
            phases = sorted({k for p in reports for k in p["durationMs"]})
            medians = {k: np.median([p["durationMs"].get(k, 0) for p in reports]) for k in phases}
            text = ", ".join(f"{k} {v / 1000:.2f}" for k, v in medians.items())
            print(f"  {name}, p50 s per non-empty trigger: {text}")
        print(f"  {compiled}")
        print(f"CPU seconds over the live phase ({cpu.seconds:.0f} s wall, 2 cores): {cpu}")
        if seconds:
            print(
                f"distribution: {rows} alerts in {seconds:.1f} s of micro-batches "
                f"= {rows / seconds:,.0f} alerts/s (science Parquet -> topics)"
            )
        if args.jfr:
            # written now: the JVM does not outlive spark.stop() long enough to dump on exit
            jvm = spark.sparkContext._jvm
            for recording in jvm.jdk.jfr.FlightRecorder.getFlightRecorder().getRecordings():
                recording.dump(jvm.java.io.File(args.jfr).toPath())
            print(f"JFR recording of the Spark JVM: {args.jfr}")
        spark.stop()
    finally:
        processes.stop(settings, "kafka", timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
