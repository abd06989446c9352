"""Null-safe column helpers shared by the built-in filters.

One rule everywhere: an unknown value never satisfies a condition, so a null never
publishes an alert. The one exception is how ``xmatch`` encodes "no counterpart": a null
``xm_<cat>_id``. There, null *is* the information, and :func:`no_counterpart` treats it so.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from fink_broker.science.counterparts import (
    AGN_CATALOGUES,
    STAR_CATALOGUES,
    VARIABLE_STAR_CATALOGUES,
    any_counterpart,
    has_id,
    no_counterpart,
    xm_id,
)

__all__ = [
    "AGN_CATALOGUES",
    "SSO_CANDIDATE",
    "SSO_KNOWN",
    "STAR_CATALOGUES",
    "VARIABLE_STAR_CATALOGUES",
    "any_counterpart",
    "as_mask",
    "flag_in",
    "flag_known_and_not",
    "has_id",
    "no_counterpart",
    "numbers",
    "positive_flux",
    "xm_id",
]

#: ``sso_flag`` values written by the ``solar_system`` module
SSO_KNOWN = 3
SSO_CANDIDATE = 2


def numbers(series: pd.Series) -> np.ndarray:
    """A numeric column as float64 with NaN for null (nullable ints and objects included)."""
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def positive_flux(series: pd.Series) -> np.ndarray:
    """Whether the difference flux is positive: the source is brighter than in the template.

    A negative difference (ZTF ``isdiffpos = f``) is a source fainter than its reference
    image: an existing, fading object, never a brightening. ZTF's canonical ``mag`` is the
    magnitude of ``|flux|``, so filters that cut on ``mag`` must also check the sign.
    """
    with np.errstate(invalid="ignore"):
        return numbers(series) > 0


def flag_in(series: pd.Series, values: Iterable[int]) -> np.ndarray:
    """Whether an integer flag is one of ``values`` (null is never in)."""
    flags = numbers(series)
    return np.isin(flags, np.asarray(list(values), dtype=float))


def flag_known_and_not(series: pd.Series, values: Iterable[int]) -> np.ndarray:
    """Whether an integer flag is known *and* none of ``values`` (null fails)."""
    flags = numbers(series)
    return ~np.isnan(flags) & ~np.isin(flags, np.asarray(list(values), dtype=float))


def as_mask(values: np.ndarray, index: pd.Index) -> pd.Series:
    """A boolean numpy array as a Series on the input index (what a filter returns)."""
    return pd.Series(np.asarray(values, dtype=bool), index=index)
