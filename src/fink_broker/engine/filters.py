"""The bridge from alert filters (pandas predicates) to Spark: one Arrow UDF for all filters.

Every enabled filter runs in a single scalar pandas UDF on each Arrow batch, fed with only
the columns the filters read; the UDF returns one boolean per filter (a vectorised struct),
and the JVM turns them into the list of topics each alert goes to. Exploding that list gives
one outgoing row per (alert, matching filter).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.functions import pandas_udf

from fink_broker.plugins.filters import AlertFilter, run_filter


def filter_inputs(filters: Sequence[AlertFilter]) -> list[str]:
    """Union of the filters' inputs, in a stable order."""
    out: list[str] = []
    for f in filters:
        out += [c for c in f.inputs if c not in out]
    return out


@dataclass(frozen=True)
class FilterRunner:
    """Evaluates every filter on a pandas batch; picklable for the workers."""

    filters: tuple[AlertFilter, ...]

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        frame = batch.reset_index(drop=True)
        return pd.DataFrame(
            {f.name: run_filter(f, frame[list(f.inputs)]).astype(bool) for f in self.filters},
            index=frame.index,
        )


def topics_column(
    filters: Sequence[AlertFilter], topics: Sequence[str], inputs: dict[str, Column]
) -> Column:
    """``array<string>``: per filter, its topic where the alert passes it, else null.

    The nulls are left for the caller to drop after ``explode``: removing them here takes a
    ``filter`` lambda, which Spark cannot compile, so the ``explode`` of every alert and
    its ~200 columns would run interpreted, generating its row projection in every task.
    """
    names = filter_inputs(filters)
    missing = [n for n in names if n not in inputs]
    if missing:
        raise KeyError(f"no Spark column for filter inputs {missing}")
    runner = FilterRunner(tuple(filters))

    def run(batch: pd.DataFrame) -> pd.DataFrame:
        return runner(batch)

    verdicts = T.StructType([T.StructField(f.name, T.BooleanType()) for f in filters])
    udf = pandas_udf(run, returnType=verdicts)  # type: ignore[call-overload]
    passed = udf(F.struct(*[inputs[n].alias(n) for n in names]))
    return F.array(
        *[F.when(passed[f.name], F.lit(t)) for f, t in zip(filters, topics, strict=True)]
    )
