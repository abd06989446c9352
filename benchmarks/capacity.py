"""Benchmark: the highest input rate each mode follows, with its latency at every step.

For each mode (``separate``: stream2raw, raw2science and distribution as three queries of
one Spark application; ``pipeline``: `fink start pipeline`'s one query), in the same run
and on the same broker: the services start on a bounded pass of the real alerts, then run
live with 1-second triggers while the simulator publishes real alerts (fresh ids, distinct
cutout pixels) at a rate that rises step by step. Each step holds for ``--hold`` seconds.

The backlog is sampled every few seconds: the alerts published but not yet taken in by
stream2raw (consumer lag), plus the rows each later stage has still to take in from the
one before (raw not yet read by raw2science, science not yet read by distribution), from
the batches each stage logged. A step is **sustained** when the backlog does not grow over
the second half of the hold (least-squares slope under 2% of the rate) and ends under
``--max-backlog-s`` seconds of input. The ladder stops at the first step that is not.

Prints, per step: the rate, the backlog at the end and its slope, latency input -> output
topic p50/p95/p99 over the messages published in the step; per mode: the highest sustained
rate, the wall seconds per alert of each stage (from their batches) and the disk per alert
of the raw and science archives.

    .venv/bin/python benchmarks/capacity.py --survey rubin --rates 150,250,350,500,700
    .venv/bin/python benchmarks/capacity.py --survey ztf --rates 250,500,750,1000,1400
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))

from benchmarks.cpu_account import CpuAccount  # noqa: E402
from benchmarks.distribution import MODES, output_latencies, percentiles  # noqa: E402
from benchmarks.scratch import add_keep_option, scratch_folder, scratch_paths  # noqa: E402
from benchmarks.stream2raw import free_port  # noqa: E402

from fink_broker.config import Settings, dump_toml, load_settings  # noqa: E402
from fink_broker.infra import kafka_local, processes  # noqa: E402
from fink_broker.lake import Lake  # noqa: E402
from fink_broker.plugins.filters import topic_name  # noqa: E402
from fink_broker.services.stream_offsets import stream2raw_positions  # noqa: E402
from fink_broker.services.streaming import metrics_lines  # noqa: E402
from fink_broker.simulator.replay import replay  # noqa: E402
from fink_broker.surveys import get_adapter  # noqa: E402

#: the stages in data-flow order, by the name their batches are logged under
STAGES = ("stream2raw", "raw2science", "distribution")


@dataclass
class Step:
    """One rate of the ladder, as measured."""

    rate: float
    backlog_end: int
    slope: float
    latencies: np.ndarray
    sustained: bool

    def line(self) -> str:
        latency = percentiles(self.latencies) if len(self.latencies) else "no output message"
        verdict = "sustained" if self.sustained else "NOT sustained"
        return (
            f"  {self.rate:6.0f} alerts/s: backlog at the end {self.backlog_end:7d}, slope "
            f"{self.slope:+8.1f} alerts/s over the second half -> {verdict}; latency {latency}"
        )


def stage_totals(settings: Settings, service: str, since_iso: str = "") -> tuple[int, int, float]:
    """(rows in, rows out, seconds) over the batches ``service`` logged (since
    ``since_iso``), each batch id once."""
    lines = {
        line["batch_id"]: line
        for line in metrics_lines(settings, service)
        if "event" not in line and "batch_id" in line and line["time"] >= since_iso
    }
    return (
        sum(int(x["rows_in"]) for x in lines.values()),
        sum(int(x["rows_out"]) for x in lines.values()),
        sum(float(x["duration_s"]) for x in lines.values()),
    )


def published(bootstrap: str, topic: str) -> int:
    """Messages the input topic holds (the sum of its partitions' end offsets)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "fink-bench-capacity"})
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        total = 0
        for partition in meta.partitions:
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            total += high
        return total
    finally:
        consumer.close()


class Trimmer:
    """Keeps the broker's disk in bounds during a ladder: Rubin alerts are ~115 kB, and the
    input and output topics of a ladder to 1,000 alerts/s hold tens of GB otherwise.

    Every ``every_s`` seconds, in a thread: the input records the stream has committed
    (below the offsets of the newest committed batch) and the output records but the last
    ``keep`` of each partition are deleted; topics roll 64 MB segments, so that deletion
    frees disk soon (Kafka drops whole segments). The latency reads the input time from the
    outgoing messages, and a step's messages are read right after it, within ``keep``.
    """

    def __init__(self, settings: Settings, topic: str, keep: int = 60000, every_s: float = 10):
        self.settings, self.topic, self.keep, self.every_s = settings, topic, keep, every_s
        self.admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap_servers})
        self.consumer = Consumer(
            {"bootstrap.servers": settings.kafka.bootstrap_servers, "group.id": "fink-trim"}
        )
        self.rolled: set[str] = set()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Trimmer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join(timeout=30)
        self.consumer.close()

    def _loop(self) -> None:
        while not self.done.wait(self.every_s):
            try:
                self.trim()
            except Exception as err:  # a failed trim must not stop the measurement
                print(f"  (trim failed: {err})", flush=True)

    def trim(self) -> None:
        topics = [t for t in self.admin.list_topics(timeout=10).topics if not t.startswith("__")]
        self._roll_small_segments([t for t in topics if t not in self.rolled])
        below = []
        done = [p for p in stream2raw_positions(self.settings) if self.topic in p.offsets]
        for position in done[:1]:
            offsets = position.offsets[self.topic]
            if not position.committed:  # the batch in flight reads from its start offsets
                continue
            below += [TopicPartition(self.topic, part, o) for part, o in offsets.items()]
        for topic in topics:
            if topic == self.topic:
                continue
            for part in self.admin.list_topics(topic, timeout=10).topics[topic].partitions:
                low, high = self.consumer.get_watermark_offsets(
                    TopicPartition(topic, part), timeout=10
                )
                if high - self.keep > low:
                    below.append(TopicPartition(topic, part, high - self.keep))
        if below:
            for future in self.admin.delete_records(below, request_timeout=20).values():
                future.result()

    def _roll_small_segments(self, topics: list[str]) -> None:
        if not topics:
            return
        size = ConfigEntry(
            "segment.bytes", str(64 * 2**20), incremental_operation=AlterConfigOpType.SET
        )
        resources = [
            ConfigResource(ConfigResource.Type.TOPIC, t, incremental_configs=[size]) for t in topics
        ]
        for future in self.admin.incremental_alter_configs(resources).values():
            future.result()
        self.rolled.update(topics)


def backlog(settings: Settings, topic: str) -> int:
    """Alerts published and not yet through every stage (see the module docstring)."""
    raw_in, raw_out, _ = stage_totals(settings, "stream2raw")
    science_in, science_out, _ = stage_totals(settings, "raw2science")
    routed_in, _, _ = stage_totals(settings, "distribution")
    lag = published(settings.kafka.bootstrap_servers, topic) - raw_in
    return lag + max(raw_out - science_in, 0) + max(science_out - routed_in, 0)


def spark_cpu(cpu: CpuAccount) -> float:
    """CPU seconds of the broker's own processes: not the Kafka broker, not the simulator."""
    return sum(v for kind, v in cpu.used.items() if kind not in ("Kafka broker", "simulator"))


def disk_bytes(path: str) -> int:
    """Bytes of the Parquet files under ``path``."""
    return sum(p.stat().st_size for p in Path(path).rglob("*.parquet"))


def run_mode(args: argparse.Namespace, mode: str, tmp: Path, port: int) -> list[str]:
    """The ladder of one mode in a Spark application of its own; returns its report."""
    from fink_broker.engine.session import get_session
    from fink_broker.services import distribution, pipeline, raw2science, stream2raw

    folder = tmp / mode
    topic = f"capacity_{mode}_{args.survey}"
    base = {
        **scratch_paths(folder, REPO),
        "kafka.bootstrap_servers": f"127.0.0.1:{port}",
        "stream2raw.survey": args.survey,
        "stream2raw.topic": topic,
        "stream2raw.max_offsets_per_trigger": 4000,
        "raw2science.max_files_per_trigger": 20,
        "distribution.max_files_per_trigger": 20,
    }
    triggers = ("stream2raw.trigger", "raw2science.trigger", "distribution.trigger")
    bounded = load_settings(
        None, env={}, overrides={**base, **dict.fromkeys(triggers, "availableNow")}
    )
    live = load_settings(None, env={}, overrides={**base, **dict.fromkeys(triggers, "1 second")})
    services = (pipeline,) if mode == "pipeline" else (stream2raw, raw2science, distribution)
    datasim = Path(args.datasim) / args.survey
    spark = get_session(bounded, app_name=f"fink-bench-capacity-{mode}")
    report = [f"{mode} mode:"]
    trimmer: Trimmer | None = None
    try:
        replay(bounded, survey=args.survey, folder=datasim, topic=topic)
        for service in services:
            service.start(bounded, spark).awaitTermination()
        queries = [s.start(live, spark) for s in services]
        trimmer = Trimmer(live, topic).__enter__()
        config = folder / "fink.toml"
        config.write_text(dump_toml(live))
        n_files = len(list(datasim.glob("*.avro")))
        sent = len(list(datasim.glob("*.avro")))
        steps: list[Step] = []
        plan = [(args.rates[0], args.warm_seconds, False)]
        plan += [(rate, args.hold, True) for rate in args.rates]
        suffix = get_adapter(args.survey).topic_suffix
        topics = [topic_name(f, suffix) for f in distribution.selected_filters(live, args.survey)]
        since_iso = ""
        cpu = CpuAccount(scope=str(tmp))
        for rate, seconds, measured in plan:
            if measured and not since_iso:
                since_iso = datetime.now(UTC).isoformat(timespec="seconds")
                taken_before = stage_totals(live, "stream2raw")[0]
                cpu.__enter__()
            n = int(rate * seconds)
            simulator = [
                sys.executable,
                "-m",
                "fink_broker.simulator.cli",
                *("-c", str(config), "--survey", args.survey, "--datasim", str(datasim)),
                *("--topic", topic, "--nalerts", str(n), "--rate", str(rate)),
                *("--repeat", str(2 + -(-(sent + n) // n_files)), "--skip", str(sent)),
            ]
            start_ms = int(time.time() * 1000)
            publishing = subprocess.Popen(simulator, stdout=subprocess.DEVNULL)
            samples: list[tuple[float, int]] = []
            t0 = time.monotonic()
            while publishing.poll() is None:
                time.sleep(args.sample_s)
                samples.append((time.monotonic() - t0, backlog(live, topic)))
            if publishing.returncode != 0:
                raise RuntimeError(f"the simulator failed: {publishing.returncode}")
            sent += n
            end = backlog(live, topic)
            if not measured:
                report.append(
                    f"  warm-up at {rate:.0f} alerts/s for {seconds:.0f} s: backlog {end}"
                )
                print(report[-1], flush=True)
                continue
            half = np.array([(t, b) for t, b in samples if t >= seconds / 2]).reshape(-1, 2)
            slope = float(np.polyfit(half[:, 0], half[:, 1], 1)[0]) if len(half) >= 3 else np.nan
            ok = bool(slope < 0.02 * rate and end < args.max_backlog_s * rate)
            until_ms = int(time.time() * 1000)
            # the messages of the step's alerts that are still on their way count too
            time.sleep(min(args.max_backlog_s, 15))
            latencies = output_latencies(live, topics, start_ms, until_ms)[:, -1]
            steps.append(Step(rate, end, slope, latencies, ok))
            print(steps[-1].line(), flush=True)
            if not ok:
                break
        cpu.__exit__(None, None, None)
        taken = stage_totals(live, "stream2raw")[0] - taken_before
        for query in queries:
            query.stop()
        report += [s.line() for s in steps]
        good = [s.rate for s in steps if s.sustained]
        report.append(
            f"  highest sustained rate: {max(good):.0f} alerts/s" if good else "  none sustained"
        )
        lake = Lake(live.paths.root, args.survey)
        raw_rows = stage_totals(live, "stream2raw")[1]
        science_rows = stage_totals(live, "raw2science")[1]
        for name in STAGES:
            rows_in, _, seconds = stage_totals(live, name, since_iso)
            if rows_in:
                report.append(
                    f"  {name}: {1000 * seconds / rows_in:.2f} ms of batch wall time per alert in "
                    f"({rows_in} alerts, {seconds:.0f} s, measured steps)"
                )
        if taken:
            report.append(
                f"  CPU over the measured steps ({cpu.seconds:.0f} s wall, {taken} alerts "
                f"taken in): {cpu}; Spark (JVM, driver, Python workers) "
                f"{1000 * spark_cpu(cpu) / taken:.2f} core-ms per alert"
            )
        if raw_rows and science_rows:
            report.append(
                f"  disk per alert: raw {disk_bytes(lake.raw) / raw_rows / 1024:.1f} kB, science "
                f"{disk_bytes(lake.science) / science_rows / 1024:.1f} kB per science alert"
            )
    finally:
        if trimmer is not None:
            trimmer.__exit__(None, None, None)
        spark.stop()
        # the archives of a mode are read by nothing after its report: room for the next
        shutil.rmtree(folder / "lake", ignore_errors=True)
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--survey", choices=["ztf", "rubin"], default="rubin")
    parser.add_argument(
        "--rates",
        type=lambda text: [float(x) for x in text.split(",")],
        default=[150.0, 250.0, 350.0, 500.0, 700.0],
        help="the ladder of rates, alerts/s, comma-separated",
    )
    parser.add_argument("--hold", type=float, default=300.0, help="seconds per step")
    parser.add_argument(
        "--warm-seconds", type=float, default=120.0, help="live warm-up at the first rate"
    )
    parser.add_argument("--sample-s", type=float, default=5.0, help="seconds between samples")
    parser.add_argument(
        "--max-backlog-s",
        type=float,
        default=20.0,
        help="a sustained step ends with less than this many seconds of input in backlog",
    )
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated modes")
    parser.add_argument("--datasim", default=str(REPO.parent / "shared" / "datasim"))
    add_keep_option(parser)
    args = parser.parse_args()

    tmp = scratch_folder("fink-bench-capacity-", args.keep)
    port, controller = free_port(), free_port()
    kafka = load_settings(
        None,
        env={},
        overrides={
            **scratch_paths(tmp, REPO),
            "local_kafka.port": port,
            "local_kafka.controller_port": controller,
        },
    )
    kafka_local.start_kafka(kafka)
    reports: list[str] = []
    try:
        for mode in args.modes.split(","):
            reports += run_mode(args, mode, tmp, port)
    finally:
        processes.stop(kafka, "kafka", timeout=30)
    print()
    print(
        f"capacity, survey {args.survey}, {args.hold:.0f} s per step, 1-second triggers, "
        "every built-in module and filter, default quality cuts, 2 cores:"
    )
    print("\n".join(reports))
    return 0


if __name__ == "__main__":
    sys.exit(main())
