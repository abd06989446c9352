"""The bridge from alert filters (pandas predicates) to Spark: one Arrow UDF for all filters.

Every enabled filter runs in a single scalar pandas UDF on each Arrow batch, fed with only
the columns the filters read; the UDF returns one boolean per filter (a vectorised struct),
and the JVM turns them into the list of topics each alert goes to. Exploding that list gives
one outgoing row per (alert, matching filter).

Each filter runs under the distribution's failure policy (``plugins.filters.
run_filter_with_policy``): with ``null_and_count`` a filter that raises on an Arrow batch
selects nothing from it, and the verdict struct flags those alerts, so the service counts
them per filter without a second pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.functions import pandas_udf

from fink_broker.engine.canonical import StagedColumns, canonical_staged
from fink_broker.plugins.filters import AlertFilter, run_filter_with_policy
from fink_broker.plugins.module import FailurePolicy
from fink_broker.surveys.fields import CANONICAL_NAMES

#: suffix of the verdict field that flags the alerts a filter failed on
FAILED_SUFFIX = "__failed"


def failed_field(name: str) -> str:
    """The verdict field that is true on the alerts filter ``name`` raised on."""
    return f"{name}{FAILED_SUFFIX}"


def filter_inputs(filters: Sequence[AlertFilter]) -> list[str]:
    """Union of the filters' inputs, in a stable order."""
    out: list[str] = []
    for f in filters:
        out += [c for c in f.inputs if c not in out]
    return out


def filter_input_columns(schema: T.StructType, survey: str, names: Sequence[str]) -> StagedColumns:
    """Filter inputs: canonical columns computed from the alert, others read as they are;
    the ``stage`` columns go in a ``select`` before the one that reads the inputs."""
    canonical = canonical_staged(
        schema, survey, [n for n in names if n in CANONICAL_NAMES and n not in schema.names]
    )
    inputs = dict(canonical.columns)
    inputs.update({n: F.col(n) for n in names if n not in inputs})
    return StagedColumns(canonical.stage, inputs)


@dataclass(frozen=True)
class FilterRunner:
    """Evaluates every filter on a pandas batch; picklable for the workers."""

    filters: tuple[AlertFilter, ...]
    policy: FailurePolicy = FailurePolicy.FAIL

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        frame = batch.reset_index(drop=True)
        out: dict[str, pd.Series] = {}
        for f in self.filters:
            mask, failed = run_filter_with_policy(f, frame[list(f.inputs)], self.policy)
            out[f.name] = mask.astype(bool)
            out[failed_field(f.name)] = pd.Series(failed > 0, index=frame.index)
        return pd.DataFrame(out, index=frame.index)


def verdicts_column(
    filters: Sequence[AlertFilter],
    inputs: dict[str, Column],
    policy: FailurePolicy | str = FailurePolicy.FAIL,
) -> Column:
    """``struct``: per filter, whether the alert passes it, and whether the filter failed
    on it (``<name>__failed``); one Arrow UDF evaluates them all."""
    names = filter_inputs(filters)
    missing = [n for n in names if n not in inputs]
    if missing:
        raise KeyError(f"no Spark column for filter inputs {missing}")
    runner = FilterRunner(tuple(filters), FailurePolicy(policy))

    def run(batch: pd.DataFrame) -> pd.DataFrame:
        return runner(batch)

    fields = []
    for f in filters:
        fields += [
            T.StructField(f.name, T.BooleanType()),
            T.StructField(failed_field(f.name), T.BooleanType()),
        ]
    udf = pandas_udf(run, returnType=T.StructType(fields))  # type: ignore[call-overload]
    return udf(F.struct(*[inputs[n].alias(n) for n in names]))


def topics_column(
    filters: Sequence[AlertFilter], topics: Sequence[str], verdicts: Column
) -> Column:
    """``array<string>``: per filter, its topic where the alert passes it, else null.

    The nulls are left for the caller to drop after ``explode``: removing them here takes a
    ``filter`` lambda, which Spark cannot compile, so the ``explode`` of every alert and
    its ~200 columns would run interpreted, generating its row projection in every task.
    """
    return F.array(
        *[F.when(verdicts[f.name], F.lit(t)) for f, t in zip(filters, topics, strict=True)]
    )


def failure_counts(filters: Sequence[AlertFilter], verdicts: Column) -> list[Column]:
    """Aggregates (for an ``Observation``): per filter, the alerts it failed on."""
    return [F.count_if(verdicts[failed_field(f.name)]).alias(f.name) for f in filters]
