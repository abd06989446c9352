"""Benchmark: raw2science on local[2] versus the same module functions on pandas.

Builds a raw archive of >= 20,000 alerts the real way (simulator -> local Kafka ->
stream2raw), then prints, for the default quality cuts and with the cuts disabled (every alert
through every module):
  (a) raw2science alerts/s on local[2] (raw Parquet -> cuts -> all built-in modules -> Parquet),
  (b) the bare-Python rate of the same work on one core: cuts, canonical columns and every
      module function called directly on pandas frames of the same alerts,
  (c) their ratio (a) / (b).

    .venv/bin/python benchmarks/raw2science.py --survey ztf --nalerts 20000
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))

from benchmarks.stream2raw import free_port  # noqa: E402

from fink_broker.config import Settings, load_settings  # noqa: E402
from fink_broker.infra import kafka_local, processes  # noqa: E402
from fink_broker.lake import Lake  # noqa: E402
from fink_broker.plugins import run_module  # noqa: E402
from fink_broker.simulator.replay import replay  # noqa: E402
from fink_broker.surveys import get_adapter  # noqa: E402
from fink_broker.surveys.base import iter_alert_files, read_alert_file  # noqa: E402
from fink_broker.surveys.fields import canonical_frame, evaluate_cuts  # noqa: E402


def bare_python_rate(settings: Settings, survey: str, n: int, folder: Path) -> tuple[float, int]:
    """Alerts/s of cuts + canonical columns + every module on pandas, and alerts kept."""
    from fink_broker.services.raw2science import quality_cuts, selected_modules

    adapter = get_adapter(survey)
    base = [read_alert_file(f)[0] for f in iter_alert_files(folder)]
    records = [adapter.with_fresh_ids(base[i % len(base)], i // len(base)) for i in range(n)]
    modules = selected_modules(settings, survey)
    produced = {c.name for m in modules for c in m.outputs}
    # the canonical inputs: module outputs that other modules read come from the join below
    names = sorted({c for m in modules for c in m.inputs} - produced)
    # warm-up: catalogue indexes are built once per process, as in a Spark worker
    warm = canonical_frame(records[:50], survey, names)
    for m in modules:
        warm = warm.join(run_module(m, warm[list(m.inputs)]))
    t0 = time.perf_counter()
    flags = evaluate_cuts(quality_cuts(settings, survey), records)
    kept = [r for r, ok in zip(records, flags["passed_all"], strict=True) if ok]
    frame = canonical_frame(kept, survey, names)
    for m in modules:
        frame = frame.join(run_module(m, frame[list(m.inputs)]))
    return n / (time.perf_counter() - t0), len(kept)


def spark_rate(spark, settings: Settings, survey: str) -> tuple[float, int, float]:
    """(alerts/s, rows written, seconds) of one bounded raw2science run."""
    from fink_broker.services import raw2science

    t0 = time.perf_counter()
    query = raw2science.start(settings, spark)
    query.awaitTermination()
    seconds = time.perf_counter() - t0
    rows_in = spark.read.parquet(Lake(settings.paths.root, survey).raw).count()
    out = spark.read.parquet(Lake(settings.paths.root, survey).science).count()
    return rows_in / seconds, out, seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--survey", choices=["ztf", "rubin"], default="ztf")
    parser.add_argument("--nalerts", type=int, default=20000)
    parser.add_argument("--datasim", default=str(REPO.parent / "shared" / "datasim"))
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="fink-bench-r2s-"))
    port, controller = free_port(), free_port()
    overrides = {
        "paths.root": str(tmp / "lake"),
        "paths.state_dir": str(tmp / "state"),
        "paths.jar_cache": str(REPO / "jvm-cache"),
        "local_kafka.port": port,
        "local_kafka.controller_port": controller,
        "kafka.bootstrap_servers": f"127.0.0.1:{port}",
        "stream2raw.survey": args.survey,
        "stream2raw.topic": f"bench_{args.survey}",
        "stream2raw.trigger": "availableNow",
        "raw2science.trigger": "availableNow",
        "raw2science.max_files_per_trigger": 2,
    }
    settings = load_settings(None, env={}, overrides=overrides)
    folder = Path(args.datasim) / args.survey
    n_files = len(list(folder.glob("*.avro")))
    kafka_local.start_kafka(settings)
    try:
        replay(
            settings,
            survey=args.survey,
            folder=folder,
            topic=settings.stream2raw.topic,
            repeat=-(-args.nalerts // n_files),
            nalerts=args.nalerts,
        )
        from fink_broker.engine.session import get_session
        from fink_broker.services import stream2raw

        spark = get_session(settings, app_name="fink-bench-r2s")
        stream2raw.start(settings, spark).awaitTermination()
    finally:
        processes.stop(settings, "kafka", timeout=30)

    no_cuts = {"raw2science.ztf_rb_min": 0.0, "raw2science.rubin_reliability_min": 0.0}
    variants = {
        "default cuts": {},
        "no cuts": no_cuts,
        "no cuts, --noscience": {**no_cuts, "raw2science.noscience": True},
    }
    seconds_of = {}
    for label, extra in variants.items():
        # each variant reads the same raw archive into an empty science folder
        run = load_settings(None, env={}, overrides={**overrides, **extra})
        lake = Lake(run.paths.root, args.survey)
        shutil.rmtree(lake.science, ignore_errors=True)
        shutil.rmtree(lake.checkpoint("raw2science"), ignore_errors=True)
        rate, written, seconds = spark_rate(spark, run, args.survey)
        seconds_of[label] = seconds
        print(f"{args.survey}, {label}: {args.nalerts} alerts in, {written} out, {seconds:.1f} s")
        print(f"    raw2science local[2]: {rate:,.0f} alerts/s")
    python_rate, _kept = bare_python_rate(
        load_settings(None, env={}, overrides={**overrides, **no_cuts}),
        args.survey,
        args.nalerts,
        folder,
    )
    modules_s = seconds_of["no cuts"] - seconds_of["no cuts, --noscience"]
    spark_modules_rate = args.nalerts / modules_s if modules_s > 0 else float("inf")
    print()
    print(f"(a) science modules under Spark: {args.nalerts} alerts in {modules_s:.1f} s extra")
    print(f"    = {spark_modules_rate:,.0f} alerts/s (no-cuts run minus --noscience run)")
    print(f"(b) canonical columns + modules on pandas, 1 core: {python_rate:,.0f} alerts/s")
    print(f"(c) loss under Spark (b)/(a): {python_rate / spark_modules_rate:.2f}x")
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
