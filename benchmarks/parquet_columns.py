"""Benchmark: Parquet write time of floating-point columns with and without a dictionary.

Fink's archives write floating-point columns without Parquet's dictionary
(``engine.sinks.COLUMN_OPTIONS``). This prints why: on columns of distinct values, such as
positions, fluxes or light-curve features, Parquet still builds a dictionary for each column
chunk's first page before it finds it no smaller than the plain values and writes them again
plainly. The frame is cached, so only the write is timed; the two writers alternate and the
median of the rounds after the first two is printed, with the bytes each wrote.

    .venv/bin/python benchmarks/parquet_columns.py --rows 20000 --columns 120
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
from fink_broker.engine.sinks import parquet_options  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--columns", type=int, default=120, help="double columns")
    parser.add_argument("--rounds", type=int, default=7)
    add_keep_option(parser)
    args = parser.parse_args()

    from pyspark.sql import functions as F

    from fink_broker.engine.session import get_session

    tmp = scratch_folder("fink-bench-parquet-", args.keep)
    settings = load_settings(
        None,
        env={},
        overrides={
            **scratch_paths(tmp, REPO),
        },
    )
    spark = get_session(settings, app_name="fink-bench-parquet")
    frame = (
        spark.range(args.rows)
        .select(
            "id",
            *[(F.rand(seed) * 100).alias(f"value{seed}") for seed in range(args.columns)],
        )
        .coalesce(spark.sparkContext.defaultParallelism)
        .cache()
    )
    frame.count()
    writers = {"Spark's default (dictionary)": {}, "Fink's options": parquet_options(frame.schema)}
    sizes: dict[str, int] = {}

    def writer(i: int, name: str) -> Callable[[int], None]:
        def write(r: int) -> None:
            out = tmp / f"round{r}_{i}"
            frame.write.options(**writers[name]).parquet(str(out))
            sizes[name] = sum(f.stat().st_size for f in out.glob("*.parquet"))

        return write

    runs = {name: writer(i, name) for i, name in enumerate(writers)}
    seconds = alternating_rounds(runs, args.rounds)
    print(f"{args.rows} rows x {args.columns} distinct double columns, local[2]:")
    for name, values in seconds.items():
        listed = ", ".join(f"{v:.2f}" for v in values)
        print(
            f"  {name}: median {statistics.median(values[2:]):.2f} s ({listed});"
            f" {sizes[name] / 2**20:.1f} MiB"
        )
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
