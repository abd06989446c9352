"""Benchmark: the fault run at scale. Lost and duplicated alerts per store, restarts per
service, and the time from each kill to catching up with the stream.

The scenario of ``tests/integration/test_fault_run.py`` (``tests/integration/fault_run.py``):
the four services as supervised ``fink start`` processes, each SIGKILLed once at a random
moment of a live replay, the Kafka broker and HBase restarted once each, then every store
counted against what was sent: raw against the topic's offsets, science against the raw
alerts that pass the cuts, HBase against science, each filter topic against its filter run
on science. A kill's catch-up time runs from the SIGKILL until the restarted service has
taken in everything its input held at the moment of the kill (its micro-batch lines).

    .venv/bin/python benchmarks/faults.py --nalerts 100000 --rate 400
    .venv/bin/python benchmarks/faults.py --nalerts 5000 --rate 100 --seed 7 --keep
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))

from benchmarks.scratch import add_keep_option, scratch_folder  # noqa: E402

from fink_broker.infra import hbase_local, kafka_local  # noqa: E402
from fink_broker.kafka_clients import ensure_topics  # noqa: E402
from tests.integration.conftest import hbase_settings, kafka_settings  # noqa: E402
from tests.integration.fault_run import FaultRun, report, run_settings, store_counts  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--survey", choices=["ztf", "rubin"], default="ztf")
    parser.add_argument("--nalerts", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=400.0, help="replay rate, alerts/s")
    parser.add_argument("--seed", type=int, default=None, help="moments of the faults")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--settle-timeout", type=float, default=3600.0)
    parser.add_argument("--datasim", default=str(REPO.parent / "shared" / "datasim"))
    add_keep_option(parser)
    args = parser.parse_args()
    seed = random.randrange(10**6) if args.seed is None else args.seed

    tmp = scratch_folder("fink-bench-faults-", args.keep)
    kafka = kafka_settings(tmp / "kafka-state")
    hbase = hbase_settings(tmp / "hbase-state")
    kafka_local.start_kafka(kafka)
    hbase_local.start_hbase(hbase)
    from fink_broker.engine.session import get_session

    settings = run_settings(tmp / "run", kafka, hbase, args.survey)
    ensure_topics(settings.kafka, [settings.stream2raw.topic], args.partitions)
    run = FaultRun.create(settings, kafka, hbase, tmp / "run")
    t0 = time.monotonic()
    try:
        summary = run.run(
            survey=args.survey,
            folder=Path(args.datasim) / args.survey,
            total=args.nalerts,
            rate=args.rate,
            seed=seed,
            settle_timeout=args.settle_timeout,
        )
        took = time.monotonic() - t0
        run.stop()
        spark = get_session(settings, app_name="fink-bench-faults")
        try:
            counts = store_counts(spark, run, args.survey)
        finally:
            spark.stop()
    finally:
        run.stop()
        hbase_local.stop_hbase(hbase, timeout=120)
        kafka_local.stop_kafka(kafka, timeout=60)
    print(
        f"fault run: survey={args.survey} alerts={summary.alerts} "
        f"delivery_errors={summary.delivery_errors} seed={seed} "
        f"rate={args.rate:.0f}/s wall={took:.0f} s"
    )
    for when, fault in run.events:
        print(f"  {when:7.1f} s  {fault}")
    for line in report(run, counts):
        print(" ", line)
    bad = [
        name
        for name, c in counts.items()
        if c.lost or c.foreign or (c.duplicated and not name.startswith("topic "))
    ]
    print("result:", "no alert lost or duplicated in an archive" if not bad else f"FAIL {bad}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
