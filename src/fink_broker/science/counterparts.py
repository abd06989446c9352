"""What the cross-match columns say about an alert's counterpart, shared by modules and filters.

``xmatch`` writes ``xm_<cat>_id`` (null when nothing lies within the catalogue's radius).
Null there *is* the information "no counterpart", so these helpers treat it so; every
other unknown value never satisfies a condition.

Fink's classifiers select extragalactic candidates with the SIMBAD class of the nearest
source (``cdsxmatch`` in ``fink_utils.xmatch.simbad.return_list_of_eg_host()``: no match,
a galaxy, a known or candidate supernova). SIMBAD is a network service the broker does
not call; :func:`extragalactic_candidate` stands in for it with the local catalogues:
no star (Hipparcos, VSX, GCVS) and no AGN (3HSP, 4LAC) counterpart. A galaxy counterpart
(Mangrove, OpenNGC) keeps the alert, as a SIMBAD galaxy does in Fink.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

#: catalogues whose counterpart makes the alert a known star (Hipparcos bright stars and
#: the two variable-star catalogues)
STAR_CATALOGUES: tuple[str, ...] = ("hip", "vsx", "gcvs")
#: variable-star catalogues
VARIABLE_STAR_CATALOGUES: tuple[str, ...] = ("vsx", "gcvs")
#: catalogues of known active galactic nuclei (blazars): a counterpart there is a known
#: variable source, not a new one
AGN_CATALOGUES: tuple[str, ...] = ("3hsp", "4lac")
#: a counterpart in one of these excludes an alert from Fink's extragalactic classifiers
NOT_EXTRAGALACTIC_TRANSIENT: tuple[str, ...] = STAR_CATALOGUES + AGN_CATALOGUES


def xm_id(catalogue: str) -> str:
    """The ``xmatch`` output column holding the counterpart identifier in ``catalogue``."""
    return f"xm_{catalogue}_id"


#: the columns :func:`extragalactic_candidate` reads
EXTRAGALACTIC_INPUTS: tuple[str, ...] = tuple(map(xm_id, NOT_EXTRAGALACTIC_TRANSIENT))


def has_id(series: pd.Series) -> np.ndarray:
    """Whether an identifier column holds a value (null and empty strings do not count)."""
    present = series.notna() & (series != "")
    return present.to_numpy(dtype=bool, na_value=False)


def no_counterpart(df: pd.DataFrame, catalogues: Iterable[str]) -> np.ndarray:
    """Rows with no counterpart in any of ``catalogues`` (every ``xm_<cat>_id`` null)."""
    found = np.zeros(len(df), dtype=bool)
    for catalogue in catalogues:
        found |= has_id(df[xm_id(catalogue)])
    return ~found


def any_counterpart(df: pd.DataFrame, catalogues: Iterable[str]) -> np.ndarray:
    """Rows with a counterpart in at least one of ``catalogues``."""
    return ~no_counterpart(df, catalogues)


def extragalactic_candidate(df: pd.DataFrame) -> np.ndarray:
    """The local stand-in for Fink's SIMBAD extragalactic-host cut (see the module doc)."""
    return no_counterpart(df, NOT_EXTRAGALACTIC_TRANSIENT)
