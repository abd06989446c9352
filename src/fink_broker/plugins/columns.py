"""Column declarations: the single source of every science output's name, type, unit and meaning.

The Spark schema, the outgoing Avro schema, the HBase catalog and the API documentation are
all derived from :class:`ColumnSpec` declarations, so the type vocabulary is a small closed
set of Spark DDL strings that each of those targets can represent. Validating it when a
module is declared (not when the first batch arrives) turns a typo into an import error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

#: Scalar Spark DDL types a module may declare.
SCALAR_DTYPES: frozenset[str] = frozenset(
    {"boolean", "int", "long", "float", "double", "string", "timestamp"}
)
#: Array types: ``array<scalar>`` for every scalar except timestamp (Avro/HBase keep it simple).
ARRAY_DTYPES: frozenset[str] = frozenset(f"array<{t}>" for t in SCALAR_DTYPES - {"timestamp"})
#: The closed set of declarable types (Spark DDL spelling).
DTYPES: frozenset[str] = SCALAR_DTYPES | ARRAY_DTYPES

#: Spark/Parquet/Avro-safe column names; dots would be read as struct access by Spark.
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

_INT_BOUNDS = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}

#: pandas dtype used for an all-null column of each scalar type (nullable where pandas has it).
_NULL_DTYPES: dict[str, Any] = {
    "boolean": "boolean",
    "int": "Int32",
    "long": "Int64",
    "float": "float32",
    "double": "float64",
    "string": object,
    "timestamp": "datetime64[ns, UTC]",
}


@dataclass(frozen=True)
class ColumnSpec:
    """One declared column: ``name``, Spark DDL ``dtype``, physical ``unit`` and meaning.

    >>> ColumnSpec("sso_distance_arcsec", "double", "arcsec", "distance to the SSO").dtype
    'double'
    >>> ColumnSpec("x", "decimal")
    Traceback (most recent call last):
    ...
    ValueError: column 'x': dtype 'decimal' is not one of ...
    """

    name: str
    dtype: str
    unit: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"column name {self.name!r} is not a plain identifier")
        # normalise "array< double >" spellings before checking membership
        dtype = self.dtype.replace(" ", "").lower()
        if dtype not in DTYPES:
            raise ValueError(
                f"column {self.name!r}: dtype {self.dtype!r} is not one of {sorted(DTYPES)}"
            )
        object.__setattr__(self, "dtype", dtype)

    @property
    def element_dtype(self) -> str | None:
        """The element type of an array column, None for a scalar column."""
        if self.dtype.startswith("array<"):
            return self.dtype[len("array<") : -1]
        return None


def as_column_spec(value: ColumnSpec | tuple[str, ...] | list[str]) -> ColumnSpec:
    """Accept ``ColumnSpec`` or a ``(name, dtype[, unit[, description]])`` tuple."""
    if isinstance(value, ColumnSpec):
        return value
    return ColumnSpec(*value)


def null_series(spec: ColumnSpec, index: pd.Index) -> pd.Series:
    """An all-null column of the declared type (what ``null_and_count`` emits)."""
    dtype = _NULL_DTYPES.get(spec.dtype, object)
    if dtype is object:
        return pd.Series([None] * len(index), index=index, dtype=object, name=spec.name)
    return pd.Series(pd.array([None] * len(index), dtype=dtype), index=index, name=spec.name)


def _scalar_ok(value: Any, dtype: str) -> bool:
    """Whether one non-null Python value fits a scalar declared type."""
    if dtype == "boolean":
        return isinstance(value, bool | np.bool_)
    if dtype in ("int", "long"):
        if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
            return False
        low, high = _INT_BOUNDS[dtype]
        return low <= int(value) <= high
    if dtype in ("float", "double"):
        return isinstance(value, float | int | np.floating | np.integer) and not isinstance(
            value, bool | np.bool_
        )
    if dtype == "string":
        return isinstance(value, str)
    if dtype == "timestamp":
        return isinstance(value, pd.Timestamp | np.datetime64)
    return False


#: pandas' inferred kinds of an object column (``infer_dtype``, nulls skipped) under which
#: every value fits the scalar type; other kinds, and int/long (bounds), are checked value by
#: value. Module outputs of strings are object columns, and a Python loop over each of them
#: cost the Spark workers as much CPU as the cross-match itself (py-spy, 20,000 ZTF alerts).
_NUMBERS = frozenset({"floating", "integer", "mixed-integer-float", "empty"})
_INFERRED_FITS: dict[str, frozenset[str]] = {
    "boolean": frozenset({"boolean", "empty"}),
    "float": _NUMBERS,
    "double": _NUMBERS,
    "string": frozenset({"string", "empty"}),
    "timestamp": frozenset({"datetime", "datetime64", "empty"}),
}


def _is_null(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float | np.floating) and bool(np.isnan(value))


def incompatibility(series: pd.Series, spec: ColumnSpec) -> str | None:
    """Why ``series`` cannot be converted to the declared type, or None if it can.

    Typed pandas columns are judged by dtype alone (cheap). Object columns are where a stray
    ``str`` in a numeric column hides: pandas' type inference (in C) clears the common case,
    and anything it does not clear is inspected value by value, which names the bad value.

    >>> incompatibility(pd.Series([1.0, None]), ColumnSpec("a", "double")) is None
    True
    >>> incompatibility(pd.Series(["x"]), ColumnSpec("a", "double"))
    "value 'x' (str) at row 0 is not double"
    >>> incompatibility(pd.Series([[1.0, 2.0], None]), ColumnSpec("a", "array<double>")) is None
    True
    """
    dtype = series.dtype
    element = spec.element_dtype
    if element is None and not ptypes.is_object_dtype(dtype):
        return _typed_incompatibility(series, spec)
    if element is not None and not ptypes.is_object_dtype(dtype):
        return f"pandas dtype {dtype} cannot hold arrays"
    if element is None and ptypes.infer_dtype(series, skipna=True) in _INFERRED_FITS.get(
        spec.dtype, ()
    ):
        return None
    return _object_incompatibility(series, spec)


def _object_incompatibility(series: pd.Series, spec: ColumnSpec) -> str | None:
    """The value-by-value check of an object column, which names the first bad value."""
    element = spec.element_dtype
    for position, value in enumerate(series.to_numpy()):
        if _is_null(value) if element is None else value is None:
            continue
        if element is None:
            if not _scalar_ok(value, spec.dtype):
                kind = type(value).__name__
                return f"value {value!r:.40} ({kind}) at row {position} is not {spec.dtype}"
            continue
        if not isinstance(value, list | tuple | np.ndarray):
            return f"value {value!r:.40} at row {position} is not an array"
        for item in value:
            if not _is_null(item) and not _scalar_ok(item, element):
                return f"array element {item!r:.40} at row {position} is not {element}"
    return None


def _typed_incompatibility(series: pd.Series, spec: ColumnSpec) -> str | None:
    dtype = series.dtype
    want = spec.dtype
    if want == "boolean":
        ok = ptypes.is_bool_dtype(dtype)
    elif want in ("int", "long"):
        ok = ptypes.is_integer_dtype(dtype) or (
            # an all-null float column (e.g. NaN placeholders) converts to any type
            ptypes.is_float_dtype(dtype) and bool(series.isna().all())
        )
        if ok and ptypes.is_integer_dtype(dtype) and len(series) and series.notna().any():
            low, high = _INT_BOUNDS[want]
            ok = low <= int(series.min()) and int(series.max()) <= high
            if not ok:
                return f"values outside the {want} range"
    elif want in ("float", "double"):
        ok = (ptypes.is_float_dtype(dtype) or ptypes.is_integer_dtype(dtype)) and not (
            ptypes.is_bool_dtype(dtype)
        )
    elif want == "string":
        ok = ptypes.is_string_dtype(dtype) or bool(series.isna().all())
    elif want == "timestamp":
        ok = ptypes.is_datetime64_any_dtype(dtype)
    else:  # pragma: no cover - arrays are handled by the caller
        ok = False
    return None if ok else f"pandas dtype {dtype} is not compatible with {want}"
