"""Run an unchanged fink-science function as a broker science module.

Fink's science modules are ``pandas_udf`` objects whose plain function (``.func``) takes
one pandas Series per argument, in the survey's raw field names, and returns one Series.
:func:`fink_science_module` declares such a function with its arguments and its output
column, and the broker runs it like any other module: the engine hands it the raw fields
(``candidate.ndethist``, ``prv_candidates.jd``), the adapter rebuilds Fink's arguments
from them and checks the result against the declaration. Anything that installs
fink-science can so add a module without rewriting it::

    roid = fink_science_module(
        name="fink_roid",
        function="fink_science.ztf.asteroids.processor:roid_catcher",
        arguments=[Concat("prv_candidates.jd", "candidate.jd"),
                   Concat("prv_candidates.magpsf", "candidate.magpsf"),
                   "candidate.ndethist", "candidate.sgscore1",
                   "candidate.ssdistnr", "candidate.distpsnr1"],
        output=ColumnSpec("roid", "int", "", "Fink's Solar System flag"),
        surveys=[ZTF_NAME],
    )

* a string argument is a raw field, passed as the Series of its values;
* :class:`Concat` is Fink's ``concat_col``: the field of every item of the history list
  followed by the current value, one array per alert (a null list is an empty history);
* :class:`Constant` is a literal column (a model name, a threshold), as Fink's ``F.lit``.

The function is imported on first use, in the worker (fink-science's modules import
pyspark, which a science module itself must not), once per process. Its result is
re-indexed on the batch (Fink's functions return positional Series) and cast to the
declared type; a function that fails follows the configured failure policy like any
module. Functions of fink-science 7.4.0 that do not run on pandas 2 cannot be adapted
(the anomaly score calls ``read_csv(squeeze=True)``: ``TypeError: read_csv() got an
unexpected keyword argument 'squeeze'``).
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from fink_broker.plugins import ColumnSpec, ScienceModule, science_module
from fink_broker.surveys.names import ZTF_NAME


@dataclass(frozen=True)
class Concat:
    """Fink's ``concat_col``: ``history`` (a list field's path) then ``current``."""

    history: str
    current: str


@dataclass(frozen=True)
class Constant:
    """A literal argument, the same for every alert."""

    value: Any


Argument = str | Concat | Constant


@functools.cache
def load_function(target: str) -> Callable[..., pd.Series]:
    """``module:attribute``, imported once per process; a pandas UDF gives its ``.func``."""
    module, _, attribute = target.partition(":")
    found = getattr(importlib.import_module(module), attribute)
    return getattr(found, "func", found)


def _as_array(values: Any) -> np.ndarray:
    """A history as a numpy array: numbers as float64 (null -> NaN), anything else as is."""
    if values is None:
        return np.empty(0)
    items = list(values)
    if all(v is None or isinstance(v, int | float | np.integer | np.floating) for v in items):
        return np.array([np.nan if v is None else v for v in items], dtype=float)
    return np.asarray(items, dtype=object)


def concatenated(history: pd.Series, current: pd.Series) -> pd.Series:
    """One array per alert: the history's values, then the current value."""
    return pd.Series(
        [
            _as_array([*(() if h is None else list(h)), c])
            for h, c in zip(
                history.to_numpy(dtype=object), current.to_numpy(dtype=object), strict=True
            )
        ]
    )


def _installed_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("fink-science")
    except PackageNotFoundError:  # the module then fails when it runs, and says why
        return "not-installed"


def columns_of(arguments: Iterable[Argument]) -> list[str]:
    """The raw fields the arguments read, in order, each once."""
    out: list[str] = []
    for argument in arguments:
        paths = (
            (argument,)
            if isinstance(argument, str)
            else (argument.history, argument.current)
            if isinstance(argument, Concat)
            else ()
        )
        out += [p for p in paths if p not in out]
    return out


def call_arguments(df: pd.DataFrame, arguments: Sequence[Argument]) -> list[pd.Series]:
    """Fink's arguments for the rows of ``df``, as positional Series."""
    n = len(df)
    out = []
    for argument in arguments:
        if isinstance(argument, Concat):
            out.append(concatenated(df[argument.history], df[argument.current]))
        elif isinstance(argument, Constant):
            out.append(pd.Series([argument.value] * n))
        else:
            out.append(df[argument].reset_index(drop=True))
    return out


_CASTS = {
    "int": "Int32",
    "long": "Int64",
    "double": "float64",
    "float": "float32",
    "boolean": "boolean",
}


def fink_science_module(
    *,
    name: str,
    function: str,
    arguments: Sequence[Argument],
    output: ColumnSpec,
    surveys: Iterable[str] | None,
    version: str | None = None,
    description: str | None = None,
) -> ScienceModule:
    """A science module that calls the fink-science ``function`` (``module:attribute``)."""
    arguments = tuple(arguments)

    def run(df: pd.DataFrame) -> pd.DataFrame:
        result = load_function(function)(*call_arguments(df, arguments))
        values = pd.Series(np.asarray(result, dtype=object), index=df.index)
        cast = _CASTS.get(output.dtype)
        if cast is not None:
            values = pd.to_numeric(values).astype(cast)
        return pd.DataFrame({output.name: values}, index=df.index)

    if version is None:
        version = f"fink-science-{_installed_version()}"
    return science_module(
        name=name,
        version=version,
        inputs=columns_of(arguments),
        outputs=[output],
        surveys=surveys,
        description=description or f"fink-science's {function}, run unchanged.",
    )(run)


def _ztf_history(field: str) -> Concat:
    return Concat(f"prv_candidates.{field}", f"candidate.{field}")


#: fink-science's Solar System flag (``roid``), unchanged
fink_roid = fink_science_module(
    name="fink_roid",
    function="fink_science.ztf.asteroids.processor:roid_catcher",
    arguments=[
        _ztf_history("jd"),
        _ztf_history("magpsf"),
        "candidate.ndethist",
        "candidate.sgscore1",
        "candidate.ssdistnr",
        "candidate.distpsnr1",
    ],
    output=ColumnSpec(
        "roid", "int", "", "fink-science roid: 3 MPC, 2 Fink SSO candidate, 1 first, 0 other"
    ),
    surveys=[ZTF_NAME],
    description="fink-science's roid_catcher, run unchanged (Fink's Solar System flag).",
)

#: fink-science's number of detections in the alert packet (``nalerthist``), unchanged
fink_nalerthist = fink_science_module(
    name="fink_nalerthist",
    function="fink_science.ztf.nalerthist.processor:nalerthist",
    arguments=[_ztf_history("magpsf")],
    output=ColumnSpec("nalerthist", "int", "", "fink-science nalerthist: detections in the alert"),
    surveys=[ZTF_NAME],
    description="fink-science's nalerthist, run unchanged (detections in the alert packet).",
)
