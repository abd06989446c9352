"""Benchmark: raw2science on local[2] versus the same module functions on pandas.

Builds a raw archive of >= 20,000 alerts the real way (simulator -> local Kafka ->
stream2raw), then prints, for the default quality cuts and with the cuts disabled (every alert
through every module):
  (a) the time the science modules add under Spark: a no-cuts run minus a --noscience run
      of the same archive (raw Parquet -> cuts -> all built-in modules -> Parquet), on local[2],
  (b) the bare-Python rate of the same work on one core: cuts, canonical columns and every
      module function called directly on pandas frames of the same alerts, timed once per
      round right after that round's Spark pair,
  (c) their ratio, per round and its median.
The first pair of runs is reported as "cold" (the session's first Python workers, catalogue
indexes built, JVM code not yet compiled); --warmup-pairs more pairs are run and not counted
(the JIT is still compiling: after five pairs it spent 1.2 CPU-s per run with modules on
ZTF, twice as much as without), then --rounds rounds give the "warm" figure, the median
of the per-round differences and ratios, which is what a long-running raw2science pays per
night of alerts. A warm round runs each variant twice (--noscience, modules, modules,
--noscience) and keeps the faster run of each.

    .venv/bin/python benchmarks/raw2science.py --survey ztf --nalerts 20000
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))

from benchmarks.distribution import JvmCompilations  # noqa: E402
from benchmarks.scratch import add_keep_option, scratch_folder, scratch_paths  # noqa: E402
from benchmarks.stream2raw import (  # noqa: E402
    add_spark_conf_option,
    free_port,
    spark_extra,
)

from fink_broker.config import Settings, load_settings  # noqa: E402
from fink_broker.infra import kafka_local, processes  # noqa: E402
from fink_broker.lake import Lake  # noqa: E402
from fink_broker.plugins import run_module  # noqa: E402
from fink_broker.simulator.replay import replay  # noqa: E402
from fink_broker.surveys import get_adapter  # noqa: E402
from fink_broker.surveys.base import iter_alert_files, read_alert_file  # noqa: E402
from fink_broker.surveys.fields import canonical_frame, evaluate_cuts  # noqa: E402
from tests.science_frames import raw_value  # noqa: E402


class BarePython:
    """Cuts, canonical columns and every module on pandas frames of the alerts, on one core.

    Built once (alerts with fresh ids, catalogue indexes warmed up as in a Spark worker),
    then timed once per warm round, next to that round's Spark pair: the machine's speed
    drifts over a run by more than the difference being measured (one bare run after the
    Spark rounds read 25,000 to 31,000 Rubin alerts/s on different runs of this benchmark).
    """

    def __init__(self, settings: Settings, survey: str, n: int, folder: Path) -> None:
        from fink_broker.engine.modules import external_inputs
        from fink_broker.services.raw2science import selected_modules
        from fink_broker.surveys import build_survey

        adapter = get_adapter(survey)
        base = [read_alert_file(f)[0] for f in iter_alert_files(folder)]
        self.survey = survey
        self.records = [
            adapter.with_fresh_ids(base[i % len(base)], i // len(base)) for i in range(n)
        ]
        self.cuts = build_survey(settings, survey).cuts
        self.modules = selected_modules(settings, survey)
        # the canonical inputs: module outputs that other modules read come from the join
        self.names = external_inputs(self.modules)
        #: seconds per module over the timed runs (pandas, one core)
        self.per_module: dict[str, float] = {}
        self._run(self.records[:50])
        self.per_module.clear()

    def _run(self, records: list[dict]) -> int:
        flags = evaluate_cuts(self.cuts, records)
        kept = [r for r, ok in zip(records, flags["passed_all"], strict=True) if ok]
        frame = canonical_frame(kept, self.survey, self.names)
        # raw fields that survey modules read (candidate.jdstarthist, prv_candidates.jd)
        for path in [n for n in self.names if n not in frame.columns]:
            frame[path] = [raw_value(r, path) for r in kept]
        for m in self.modules:
            t0 = time.perf_counter()
            frame = frame.join(run_module(m, frame[list(m.inputs)]))
            self.per_module[m.name] = self.per_module.get(m.name, 0.0) + time.perf_counter() - t0
        return len(kept)

    def seconds(self) -> float:
        """Seconds of one run over all the alerts."""
        t0 = time.perf_counter()
        self._run(self.records)
        return time.perf_counter() - t0


def _listed(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


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
    parser.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="warm rounds (--noscience, modules, modules, --noscience)",
    )
    parser.add_argument(
        "--warmup-pairs", type=int, default=5, help="no-cuts run pairs before the warm ones"
    )
    add_spark_conf_option(parser)
    parser.add_argument("--datasim", default=str(REPO.parent / "shared" / "datasim"))
    add_keep_option(parser)
    args = parser.parse_args()

    tmp = scratch_folder("fink-bench-r2s-", args.keep)
    port, controller = free_port(), free_port()
    overrides = {
        **scratch_paths(tmp, REPO),
        "local_kafka.port": port,
        "local_kafka.controller_port": controller,
        "kafka.bootstrap_servers": f"127.0.0.1:{port}",
        "stream2raw.survey": args.survey,
        "stream2raw.topic": f"bench_{args.survey}",
        "stream2raw.trigger": "availableNow",
        "raw2science.trigger": "availableNow",
        "spark.extra": spark_extra(args.spark_conf),
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
        "no cuts, --noscience": {**no_cuts, "raw2science.noscience": True},
        "no cuts": no_cuts,
        "default cuts": {},
    }

    def run(label: str) -> float:
        """Seconds of one bounded raw2science run of the whole raw archive, from scratch."""
        settings_run = load_settings(None, env={}, overrides={**overrides, **variants[label]})
        lake = Lake(settings_run.paths.root, args.survey)
        shutil.rmtree(lake.science, ignore_errors=True)
        shutil.rmtree(lake.checkpoint("raw2science"), ignore_errors=True)
        compiled = JvmCompilations(spark)
        rate, written, seconds = spark_rate(spark, settings_run, args.survey)
        compiled.stop()
        # the JIT's time shows how far from warm a run still is: it shares the 2 cores
        print(
            f"  {label}: {args.nalerts} in, {written} out, {seconds:.2f} s = {rate:,.0f}/s"
            f" (JIT {compiled.jit_s:.1f} s, {compiled.classes} Janino classes)"
        )
        return seconds

    bare = BarePython(
        load_settings(None, env={}, overrides={**overrides, **no_cuts}),
        args.survey,
        args.nalerts,
        folder,
    )
    print(f"{args.survey}: cold pair (first runs of this session)")
    cold = {label: run(label) for label in ("no cuts, --noscience", "no cuts")}
    cold_bare = bare.seconds()
    print(f"{args.survey}: default quality cuts")
    run("default cuts")
    for i in range(args.warmup_pairs):
        print(f"{args.survey}: warm-up pair {i + 1}/{args.warmup_pairs} (not counted)")
        for label in ("no cuts, --noscience", "no cuts"):
            run(label)
    warm: dict[str, list[float]] = {"no cuts, --noscience": [], "no cuts": []}
    warm_bare: list[float] = []
    for i in range(args.rounds):
        print(f"{args.survey}: warm round {i + 1}/{args.rounds}")
        # each variant twice, in the order A B B A, and the faster of its two runs counts:
        # a stall in one run (the --noscience run spread over 7.3-9.1 s on Rubin) then no
        # longer becomes the round's difference, and the order cancels a drift within it
        times: dict[str, list[float]] = {label: [] for label in warm}
        for label in [*warm, *reversed(warm)]:
            times[label].append(run(label))
        for label, values in times.items():
            warm[label].append(min(values))
        warm_bare.append(bare.seconds())
        print(f"  bare Python, 1 core: {args.nalerts / warm_bare[-1]:,.0f} alerts/s")
    print()
    rates = ", ".join(f"{args.nalerts / s:,.0f}" for s in warm_bare)
    print(f"(b) cuts, canonical columns and modules on pandas, 1 core, per round: {rates} alerts/s")
    runs = len(warm_bare) + 1
    for name, total in sorted(bare.per_module.items(), key=lambda kv: -kv[1]):
        print(f"    {name}: {args.nalerts * runs / total:,.0f} alerts/s on pandas, 1 core")
    # a round's runs follow each other, so they share the machine's state of the moment: the
    # median of the per-round differences and ratios is steadier than one of medians
    pairs = [
        (cold["no cuts"], cold["no cuts, --noscience"]),
        *zip(warm["no cuts"], warm["no cuts, --noscience"], strict=True),
    ]
    added = [with_modules - without for with_modules, without in pairs]
    losses = [a / b for a, b in zip(added, [cold_bare, *warm_bare], strict=True)]
    print(f"modules add, per round (s): cold {added[0]:.2f}; warm {_listed(added[1:])}")
    print(f"(c) loss, per round: cold {losses[0]:.2f}x; warm {_listed(losses[1:])}")
    for name, modules_s, bare_s, loss, whole_s in (
        ("cold", added[0], cold_bare, losses[0], cold["no cuts"]),
        (
            f"warm, median of {args.rounds} rounds",
            float(np.median(added[1:])),
            float(np.median(warm_bare)),
            float(np.median(losses[1:])),
            float(np.median(warm["no cuts"])),
        ),
    ):
        modules_rate = args.nalerts / modules_s if modules_s > 0 else float("inf")
        print(
            f"{name}: (a) modules under Spark add {modules_s:.2f} s for {args.nalerts} alerts"
            f" = {modules_rate:,.0f} alerts/s; (b) {args.nalerts / bare_s:,.0f} alerts/s"
            f"; (c) loss {loss:.2f}x; whole run with modules {args.nalerts / whole_s:,.0f} alerts/s"
        )
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
