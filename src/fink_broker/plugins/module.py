"""Science modules: plain pandas functions with a declared contract, and how to run them.

A science module is ``fn(df) -> df``: it receives exactly its declared input columns and
returns exactly its declared output columns, row-aligned with the input. It never imports
pyspark; the engine wraps :func:`run_with_policy` in an Arrow-vectorised UDF, so the same
function runs in a unit test on a hand-made frame and on an executor in production.

The contract is checked on every call (:func:`run_module`), because a module that emits an
undeclared column or a float where it declared a string would corrupt the Spark schema,
the Avro topics and the HBase catalog that are all derived from the declarations.
"""

from __future__ import annotations

import enum
import inspect
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import pandas as pd

from fink_broker.plugins.columns import ColumnSpec, as_column_spec, incompatibility, null_series

log = logging.getLogger(__name__)

#: The signature every module function has.
ModuleFunction = Callable[[pd.DataFrame], pd.DataFrame]


class ContractError(ValueError):
    """A module's input or output does not match its declaration."""


class FailurePolicy(enum.StrEnum):
    """What the engine does when a module raises on a batch."""

    #: re-raise: the micro-batch fails and Spark retries or stops the query
    FAIL = "fail"
    #: fill the module's declared outputs with nulls for the whole batch and count the rows
    NULL_AND_COUNT = "null_and_count"


@dataclass(frozen=True)
class ScienceModule:
    """A declared science module (build it with :func:`science_module`).

    Calling the module runs it through :func:`run_module`, so direct calls are checked too.
    """

    name: str
    version: str
    description: str
    inputs: tuple[str, ...]
    outputs: tuple[ColumnSpec, ...]
    #: the surveys the science applies to; None means every survey
    surveys: tuple[str, ...] | None
    function: ModuleFunction = field(repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"module name {self.name!r} is not a plain identifier")
        if not self.version:
            raise ValueError(f"module {self.name!r}: empty version")
        _no_duplicates(self.name, "input", self.inputs)
        _no_duplicates(self.name, "output", [c.name for c in self.outputs])
        if not self.outputs:
            raise ValueError(f"module {self.name!r} declares no output")
        clash = set(self.inputs) & {c.name for c in self.outputs}
        if clash:
            raise ValueError(f"module {self.name!r}: {sorted(clash)} are inputs and outputs")
        if self.surveys is not None and not self.surveys:
            raise ValueError(f"module {self.name!r}: surveys=() would never run; use None")

    @property
    def output_names(self) -> tuple[str, ...]:
        """Names of the declared outputs, in declaration order."""
        return tuple(c.name for c in self.outputs)

    def supports(self, survey: str) -> bool:
        """Whether the module applies to ``survey``."""
        return self.surveys is None or survey in self.surveys

    def __call__(self, df: pd.DataFrame) -> pd.DataFrame:
        return run_module(self, df)


def _no_duplicates(module: str, what: str, names: Sequence[str]) -> None:
    dup = sorted(n for n, count in Counter(names).items() if count > 1)
    if dup:
        raise ValueError(f"module {module!r}: duplicate {what} names {dup}")


def science_module(
    *,
    name: str,
    version: str,
    inputs: Iterable[str],
    outputs: Iterable[ColumnSpec | tuple[str, ...]],
    surveys: Iterable[str] | None = None,
    description: str | None = None,
) -> Callable[[ModuleFunction], ScienceModule]:
    """Declare a science module over ``fn(df) -> df``.

    ``description`` defaults to the first paragraph of the function's docstring.

    >>> @science_module(name="double_it", version="1.0", inputs=["mag"],
    ...                 outputs=[("mag2", "double", "mag", "twice mag")])
    ... def double_it(df):
    ...     '''Twice the magnitude.'''
    ...     return pd.DataFrame({"mag2": df["mag"] * 2.0}, index=df.index)
    >>> double_it(pd.DataFrame({"mag": [1.0, 2.5]}))["mag2"].tolist()
    [2.0, 5.0]
    >>> double_it.description
    'Twice the magnitude.'
    """

    def wrap(function: ModuleFunction) -> ScienceModule:
        text = description
        if text is None:
            doc = inspect.getdoc(function) or ""
            text = doc.split("\n\n", 1)[0].replace("\n", " ").strip()
        return ScienceModule(
            name=name,
            version=str(version),
            description=text,
            inputs=tuple(inputs),
            outputs=tuple(as_column_spec(o) for o in outputs),
            surveys=None if surveys is None else tuple(surveys),
            function=function,
        )

    return wrap


def run_module(module: ScienceModule, df: pd.DataFrame) -> pd.DataFrame:
    """Run ``module`` on ``df`` and check its output against the declaration.

    The module sees only its declared inputs (so it cannot silently depend on a column it
    did not declare). Returns the outputs in declaration order with ``df``'s index.

    Raises
    ------
    ContractError
        Missing inputs; an output frame that is not a DataFrame, has undeclared or missing
        columns, another length or index, or a column whose values do not fit its type.
    """
    missing = [c for c in module.inputs if c not in df.columns]
    if missing:
        raise ContractError(f"module {module.name!r}: input columns {missing} are missing")
    result = module.function(df.loc[:, list(module.inputs)])
    return check_output(module, df.index, result)


def check_output(module: ScienceModule, index: pd.Index, result: object) -> pd.DataFrame:
    """Validate a module's raw result (see :func:`run_module`)."""
    name = module.name
    if not isinstance(result, pd.DataFrame):
        raise ContractError(f"module {name!r} returned {type(result).__name__}, not a DataFrame")
    declared = module.output_names
    undeclared = [c for c in result.columns if c not in declared]
    absent = [c for c in declared if c not in result.columns]
    if undeclared or absent:
        raise ContractError(
            f"module {name!r}: undeclared output columns {undeclared}, missing {absent}"
        )
    if result.columns.duplicated().any():
        raise ContractError(f"module {name!r}: duplicated output columns")
    if len(result) != len(index):
        raise ContractError(
            f"module {name!r}: {len(result)} output rows for {len(index)} input rows"
        )
    if not result.index.equals(index):
        raise ContractError(f"module {name!r}: output index differs from the input index")
    for spec in module.outputs:
        why = incompatibility(result[spec.name], spec)
        if why is not None:
            raise ContractError(f"module {name!r}: column {spec.name!r} ({spec.dtype}): {why}")
    return result.loc[:, list(declared)]


def null_outputs(module: ScienceModule, index: pd.Index) -> pd.DataFrame:
    """The module's declared outputs, all null, for the rows of ``index``."""
    return pd.DataFrame({c.name: null_series(c, index) for c in module.outputs}, index=index)


def run_with_policy(
    module: ScienceModule, df: pd.DataFrame, policy: FailurePolicy | str = FailurePolicy.FAIL
) -> tuple[pd.DataFrame, int]:
    """Run a module under a failure policy: ``(outputs, number of rows that got nulls)``.

    A module error on one batch must not take the stream down when the operator chose
    ``null_and_count``: the batch's outputs become null, the rows are counted (the engine
    adds them to its per-batch metrics) and the error is logged with the module name.
    Missing *inputs* are the engine's fault, not the module's, and always raise.
    """
    policy = FailurePolicy(policy)
    missing = [c for c in module.inputs if c not in df.columns]
    if missing:
        raise ContractError(f"module {module.name!r}: input columns {missing} are missing")
    try:
        return run_module(module, df), 0
    except Exception as error:  # the policy decides; this is not a silent catch-all
        if policy is FailurePolicy.FAIL:
            raise
        log.error(
            "science module %s %s failed on a batch of %d rows; outputs set to null: %s: %s",
            module.name,
            module.version,
            len(df),
            type(error).__name__,
            error,
            exc_info=log.isEnabledFor(logging.DEBUG),
        )
        return null_outputs(module, df.index), len(df)
