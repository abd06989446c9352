"""Benchmark: the local cluster next to local mode, on the same machine, in the same run.

Starts the local cluster of ``fink cluster start`` (Spark standalone master and two workers
of one core, three brokers with replication 3, HDFS), then runs the same measurements
twice, each in a driver process of its own: once in local mode (``local[2]``, a local data
root) and once on the cluster (``spark://``, executors in the workers' JVMs with the shipped
Python environment, archives and checkpoints on HDFS). Both read the cluster's brokers, so
the difference is Spark's and the file system's.

- drain, for each survey: stream2raw empties a topic of ``--nalerts`` alerts
  (availableNow), twice (a cold and a warm run, into fresh archives), then raw2science,
  distribution and archive (HBase through Thrift) run once each over the last archive:
  rows/s of each stage, and its CPU milliseconds per input row by kind of process
  (driver JVM, executors, Python workers, brokers, HDFS, HBase) -- the figures
  ``docs/scaling.md`` sizes a cluster with.
- live: stream2raw, raw2science and distribution run as three queries of one application
  with 1-second triggers while the simulator publishes ``--rate`` alerts/s; after
  ``--warm-seconds`` the latency input -> output topic is measured for ``--seconds``,
  with the CPU seconds per alert.

Both modes share 2 cores with the brokers, HDFS and the simulator: this measures the
overhead of cluster mode, not its scaling (``docs/scaling.md`` reads these figures).

CPU is counted for this benchmark's processes only (its scratch folder in their command
line, and their children), not for the other Spark JVMs and brokers of a shared machine.

    .venv/bin/python benchmarks/cluster.py --nalerts 5000 --rate 250 --seconds 60
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))

from benchmarks.cpu_account import CpuAccount  # noqa: E402
from benchmarks.distribution import (  # noqa: E402
    batch_summary,
    output_latencies,
    percentiles,
)
from benchmarks.scratch import add_keep_option, scratch_folder  # noqa: E402

from fink_broker.config import Settings, dump_toml, load_settings  # noqa: E402
from fink_broker.infra import local_cluster, processes  # noqa: E402
from fink_broker.infra.shutdown import stop_in_order  # noqa: E402
from fink_broker.lake import Lake  # noqa: E402
from fink_broker.plugins.filters import topic_name  # noqa: E402
from fink_broker.simulator.replay import replay  # noqa: E402
from fink_broker.surveys import get_adapter  # noqa: E402

MODES = ("local", "cluster")
SURVEYS = ("ztf", "rubin")
#: kinds of process whose CPU is the broker's work on each alert (the simulator's is not)
WORK = ("Spark JVM", "Spark executors", "Python workers", "Spark driver (Python)")
#: the bounded stages timed after the drain, on its archive, in pipeline order
STAGES = ("raw2science", "distribution", "archive")


def per_alert(cpu: CpuAccount, alerts: int) -> dict[str, float]:
    """CPU milliseconds per alert of each kind of process, and of the broker's own work."""
    out = {kind: 1000 * seconds / max(alerts, 1) for kind, seconds in sorted(cpu.used.items())}
    out["work (Spark, executors, Python)"] = sum(out.get(k, 0.0) for k in WORK)
    return out


def timed(spark, settings: Settings, service, rows_in, scope: str) -> dict:
    """One bounded (availableNow) run of ``service``: its input rows, wall seconds and the
    CPU milliseconds per input row of each kind of process of this benchmark."""
    getattr(settings, service.SERVICE).trigger = "availableNow"
    with CpuAccount(scope) as cpu:
        started = time.monotonic()
        query = service.start(settings, spark)
        query.awaitTermination()
        seconds = time.monotonic() - started
    if query.exception() is not None:
        raise RuntimeError(f"{service.SERVICE}: {query.exception()}")
    alerts = rows_in()
    return {"alerts": alerts, "seconds": seconds, "cpu_ms_per_alert": per_alert(cpu, alerts)}


def drain(spark, settings: Settings, survey: str, args: argparse.Namespace) -> dict:
    """stream2raw empties the drain topic of ``survey`` ``args.rounds`` times into fresh
    archives (the first on a cold JVM); then raw2science, distribution and archive run once
    each over the last archive."""
    from fink_broker.services import archive, distribution, raw2science, stream2raw

    root = settings.paths.root.rstrip("/")
    settings.stream2raw.survey = survey
    settings.stream2raw.topic = f"{args.drain_topic}_{survey}"

    def count(stage: str):
        return lambda: spark.read.parquet(getattr(Lake(settings.paths.root, survey), stage)).count()

    rounds = []
    for i in range(args.rounds):
        settings.paths.root = f"{root}-{survey}-drain{i}"
        rounds.append(timed(spark, settings, stream2raw, count("raw"), args.scratch))
    stages = {}
    services = {"raw2science": raw2science, "distribution": distribution, "archive": archive}
    for name in STAGES if args.archive else STAGES[:-1]:
        rows_in = count("raw" if name == "raw2science" else "science")
        stages[name] = timed(spark, settings, services[name], rows_in, args.scratch)
    settings.paths.root = root
    return {"stream2raw": rounds, **stages}


def live(spark, settings: Settings, args: argparse.Namespace, scratch: Path) -> dict:
    """The three services live while the simulator publishes at ``args.rate``."""
    from fink_broker.services import distribution, raw2science, stream2raw

    services = (stream2raw, raw2science, distribution)
    topic = f"live_{args.mode}"
    folder = Path(args.datasim) / "ztf"
    settings.stream2raw.topic = topic
    for name in ("stream2raw", "raw2science", "distribution"):
        getattr(settings, name).trigger = "availableNow"
    # one bounded pass creates the archives the live file sources start from
    replay(settings, survey="ztf", folder=folder, topic=topic)
    for service in services:
        service.start(settings, spark).awaitTermination()
    for name in ("stream2raw", "raw2science", "distribution"):
        getattr(settings, name).trigger = "1 second"
    queries = [s.start(settings, spark) for s in services]
    n_alerts = int(args.rate * (args.warm_seconds + args.seconds))
    config = scratch / f"simulator-{args.mode}.toml"
    config.write_text(dump_toml(settings))
    simulator = [
        sys.executable,
        *("-m", "fink_broker.simulator.cli", "-c", str(config)),
        *("--survey", "ztf", "--datasim", str(folder), "--topic", topic),
        *("--nalerts", str(n_alerts), "--repeat", str(1 + n_alerts // 50)),
        *("--rate", str(args.rate)),
    ]
    publishing = subprocess.Popen(simulator, stdout=subprocess.DEVNULL)
    time.sleep(args.warm_seconds)
    since_ms = int(time.time() * 1000)
    since_iso = datetime.now(UTC).isoformat(timespec="seconds")
    with CpuAccount(args.scratch) as cpu:
        if publishing.wait() != 0:
            raise RuntimeError(f"the simulator failed: {publishing.returncode}")
        time.sleep(20)  # the last micro-batches of the three queries
    for query in queries:
        query.stop()
    suffix = get_adapter("ztf").topic_suffix
    prefix = settings.distribution.topic_prefix
    topics = [
        topic_name(f, suffix, prefix=prefix) for f in distribution.selected_filters(settings, "ztf")
    ]
    latencies = output_latencies(settings, topics, since_ms)[:, -1]
    measured = int(args.rate * args.seconds)
    return {
        "messages": len(latencies),
        "latency": percentiles(latencies) if len(latencies) else "no output message",
        "max_s": float(latencies.max()) if len(latencies) else None,
        "cpu_ms_per_alert": per_alert(cpu, measured),
        "wall_s": cpu.seconds,
        "batches": [batch_summary(settings, s.SERVICE, since_iso) for s in services],
    }


def run_mode(args: argparse.Namespace) -> int:
    """The driver of one mode (a process of its own: one SparkContext per process)."""
    from fink_broker.engine.session import get_session

    settings = load_settings(args.config, env={})
    scratch = Path(args.scratch)
    settings.paths.state_dir = str(scratch / f"state-{args.mode}")
    settings.distribution.topic_prefix = f"bench_{args.mode}_"
    settings.hbase.namespace = f"bench_{args.mode}"
    if args.mode == "local":
        settings.spark.master = "local[2]"
        settings.paths.root = str(scratch / "local-lake")
    else:
        settings.paths.root = settings.paths.root.rstrip("/") + "-bench"
    started = time.monotonic()
    spark = get_session(settings, app_name=f"fink-bench-{args.mode}")
    result: dict = {"session_s": time.monotonic() - started, "drain": {}}
    for survey in args.surveys.split(","):
        result["drain"][survey] = drain(spark, settings, survey, args)
    settings.stream2raw.survey = "ztf"
    result["live"] = live(spark, settings, args, scratch)
    spark.stop()
    Path(args.out).write_text(json.dumps(result, indent=2))
    return 0


def _line(name: str, run: dict) -> str:
    cpu = ", ".join(f"{k} {v:.2f}" for k, v in run["cpu_ms_per_alert"].items() if v >= 0.005)
    rate = run["alerts"] / run["seconds"]
    return (
        f"  {name:<22} {run['alerts']:>6} rows in {run['seconds']:6.1f} s = {rate:6.0f}/s;"
        f" CPU ms per row: {cpu}"
    )


def report(mode: str, result: dict) -> None:
    print(f"\n== {mode} (session {result['session_s']:.0f} s)")
    for survey, stages in result["drain"].items():
        for i, run in enumerate(stages["stream2raw"]):
            print(_line(f"{survey} stream2raw {'cold' if i == 0 else f'warm {i}'}", run))
        for name in STAGES:
            if name in stages:
                print(_line(f"{survey} {name}", stages[name]))
    lv = result["live"]
    print(f"  live latency over {lv['messages']} messages: {lv['latency']}, max {lv['max_s']}")
    cpu = ", ".join(f"{k} {v:.2f}" for k, v in lv["cpu_ms_per_alert"].items())
    print(f"  live CPU ms per published alert ({lv['wall_s']:.0f} s wall): {cpu}")
    for line in lv["batches"]:
        print(f"    {line}")


def compare(results: dict) -> None:
    """Local over cluster, stage by stage: rate and the work's CPU per row."""
    print("\n== cluster against local (last stream2raw drain, then one run of each stage)")
    work = "work (Spark, executors, Python)"
    for survey, stages in results["local"]["drain"].items():
        other = results["cluster"]["drain"][survey]
        for name in ("stream2raw", *STAGES):
            if name not in stages:
                continue
            a = stages[name][-1] if name == "stream2raw" else stages[name]
            b = other[name][-1] if name == "stream2raw" else other[name]
            print(
                f"  {survey} {name:<13} alerts/s local {a['alerts'] / a['seconds']:6.0f},"
                f" cluster {b['alerts'] / b['seconds']:6.0f}; work CPU ms/row local"
                f" {a['cpu_ms_per_alert'][work]:.2f}, cluster {b['cpu_ms_per_alert'][work]:.2f}"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nalerts", type=int, default=5000, help="alerts per drain topic")
    parser.add_argument("--surveys", default=",".join(SURVEYS), help="surveys drained")
    parser.add_argument("--rounds", type=int, default=2, help="drains per mode (first cold)")
    parser.add_argument("--rate", type=float, default=250.0, help="live alerts/s")
    parser.add_argument("--seconds", type=float, default=60.0, help="measured live phase")
    parser.add_argument("--warm-seconds", type=float, default=120.0, help="live warm-up")
    parser.add_argument("--modes", default=",".join(MODES), help="local,cluster or one of them")
    parser.add_argument(
        "--no-archive", dest="archive", action="store_false", help="no HBase, no archive stage"
    )
    parser.add_argument("--datasim", default=str(REPO.parent / "shared" / "datasim"))
    add_keep_option(parser)
    # the driver of one mode, run by this script
    parser.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--scratch", help=argparse.SUPPRESS)
    parser.add_argument("--drain-topic", default="bench_drain", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        return run_mode(args)

    scratch = scratch_folder("fink-bench-cluster-", args.keep)
    settings = load_settings(
        None,
        env={},
        overrides={
            "paths.state_dir": str(scratch / "cluster-state"),
            "paths.jar_cache": str(REPO / "jvm-cache"),
            "spark.driver_memory": "1g",
        },
    )
    config = scratch / "fink.toml"
    started = time.monotonic()
    written = local_cluster.start_cluster(settings, config)
    print(f"local cluster started in {time.monotonic() - started:.0f} s")
    try:
        if args.archive:
            local_cluster.start_beside_hbase(written, config)
        for survey in args.surveys.split(","):
            summary = replay(
                written,
                survey=survey,
                folder=Path(args.datasim) / survey,
                topic=f"{args.drain_topic}_{survey}",
                nalerts=args.nalerts,
                repeat=1 + args.nalerts // 50,
                same_cutouts=False,
            )
            print(f"{survey} drain topic: {summary.delivered} alerts delivered")
        results = {}
        for mode in args.modes.split(","):
            out = scratch / f"{mode}.json"
            driver = [sys.executable, __file__, "--mode", mode, "--config", str(config)]
            driver += ["--scratch", str(scratch), "--drain-topic", args.drain_topic]
            driver += ["--out", str(out), "--rounds", str(args.rounds)]
            driver += ["--rate", str(args.rate), "--seconds", str(args.seconds)]
            driver += ["--warm-seconds", str(args.warm_seconds), "--datasim", args.datasim]
            driver += ["--surveys", args.surveys, *([] if args.archive else ["--no-archive"])]
            with open(scratch / f"{mode}.log", "w") as log:
                if subprocess.run(driver, stdout=log, stderr=subprocess.STDOUT).returncode:
                    print(f"{mode} failed: see {scratch / f'{mode}.log'} (--keep keeps it)")
                    continue
            results[mode] = json.loads(out.read_text())
            report(mode, results[mode])
        if set(results) == set(MODES):
            compare(results)
    finally:
        stop_in_order(written, [r.name for r in processes.running(written)], timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
