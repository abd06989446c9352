"""Benchmark: sorting each alert's epochs by time, with a comparator lambda or by struct order.

The canonical history columns (``engine.canonical``) sort each alert's epochs (its previous
detections, upper limits and the current one) by time, ties kept in list order. Spark's
``array_sort`` with a comparator evaluates the lambda interpreted, per comparison;
``sort_array`` of structs whose first fields are ``(_time, _seq)`` compares them in generated
code, in the same order. This times both on the same cached arrays (alternating, median of
the rounds after the first two) and checks that they sort alike.

    .venv/bin/python benchmarks/epoch_sort.py --rows 20000 --epochs 5,30
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))

from benchmarks.rounds import alternating_rounds  # noqa: E402
from benchmarks.scratch import add_keep_option, scratch_folder, scratch_paths  # noqa: E402

from fink_broker.config import load_settings  # noqa: E402


def hashed_epochs(n: int):
    """``n`` epochs per alert, times in a hashed order with ties: the list order of tied
    epochs must stay."""
    from pyspark.sql import functions as F

    def epoch(i):
        return F.struct(
            (F.abs(F.hash("id", i)) % F.lit(4 * n)).cast("double").alias("_time"),
            i.cast("int").alias("_seq"),
            *[(F.hash("id", i, F.lit(seed)) / 1e6).alias(f"v{seed}") for seed in range(4)],
        )

    return F.transform(F.sequence(F.lit(0), F.lit(n - 1)), epoch)


def sorting(frame, sort) -> Callable[[int], None]:
    """A run that sorts the epochs of ``frame`` with ``sort`` into Spark's noop sink."""
    from pyspark.sql import functions as F

    def run(_round: int) -> None:
        frame.select(sort(F.col("epochs"))).write.format("noop").mode("overwrite").save()

    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--epochs", default="5,30", help="epochs per alert, comma-separated")
    parser.add_argument("--rounds", type=int, default=7)
    add_keep_option(parser)
    args = parser.parse_args()

    from pyspark.sql import functions as F

    from fink_broker.engine.session import get_session

    tmp = scratch_folder("fink-bench-sort-", args.keep)
    settings = load_settings(None, env={}, overrides=scratch_paths(tmp, REPO))
    spark = get_session(settings, app_name="fink-bench-sort")

    def comparator(a, b):
        return (
            F.when(a["_time"] < b["_time"], F.lit(-1))
            .when(a["_time"] > b["_time"], F.lit(1))
            .otherwise(F.lit(0))
        )

    sorts = {
        "array_sort, comparator lambda": lambda epochs: F.array_sort(epochs, comparator),
        "sort_array, (_time, _seq) structs": F.sort_array,
    }
    print(f"{args.rows} alerts, local[2], median of rounds 3-{args.rounds}:")
    for n in (int(e) for e in args.epochs.split(",")):
        frame = (
            spark.range(args.rows)
            .select("id", hashed_epochs(n).alias("epochs"))
            .coalesce(spark.sparkContext.defaultParallelism)
            .cache()
        )
        frame.count()
        a, b = (frame.select("id", sort(F.col("epochs")).alias("s")) for sort in sorts.values())
        differ = a.join(b.withColumnRenamed("s", "t"), "id").where("s != t").count()
        if differ:
            raise AssertionError(f"the two sorts differ on {differ} alerts")

        runs = {name: sorting(frame, sort) for name, sort in sorts.items()}
        seconds = alternating_rounds(runs, args.rounds)
        for name, values in seconds.items():
            median = statistics.median(values[2:])
            print(f"  {n} epochs, {name}: {median:.3f} s = {args.rows / median:,.0f} alerts/s")
        frame.unpersist()
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
