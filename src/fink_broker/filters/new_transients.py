"""``new_transients``: sources that appeared in the last few days and match nothing known.

Science case: the first days of a transient carry most of its physics (shock breakout and
cooling of supernovae, the blue kilonova, the rise of tidal disruption events) and are the
hardest to catch; follow-up resources are triggered on new, unexplained sources. This
topic is the "something new appeared here" stream, before any classifier has enough
points to say what it is.

An alert is selected when all of these hold:

1. **positive difference flux** (``flux > 0``): a new source is brighter than the template.
   A negative difference (ZTF ``isdiffpos = f``) is an existing source that faded.
2. **young**: its first detection in the alert history is at most
   :data:`MAX_AGE_DAYS` = 5 days before this one (``mjd - min(hist_mjd) <= 5``), the
   "age < 5 d" of Fink's kilonova filters and of its Rubin ``extragalactic_new_candidate``.
3. **not seen before the history window**: the survey's own detection count is no larger
   than the detections in the alert history (``ndethist <= len(hist_mjd)``). The history
   spans 30 days for ZTF and 12 months for Rubin, so a variable seen once a year ago and
   not since would otherwise look new. This is strict on purpose: on the ZTF sample of
   2020-01-01, 3 of the 10 objects first seen 38-735 days earlier have ``ndethist <= 3``
   and no detection in their 30-day history, so any tolerance lets old sources in. The
   price: ZTF's ``ndethist`` also counts raw detections at S/N ~ 3 that never became
   alerts, so a ZTF transient with such a sub-threshold precursor is not selected.
4. **not a known Solar System object** (``sso_flag`` known and not 3). Fink's own
   transient filters veto only ``roid == 3``: flag 2 (the loose "no PS1 star, at most two
   detections" candidate rule) also describes most genuine new extragalactic transients.
5. **no counterpart in a star or AGN catalogue**: no ``xm_<cat>_id`` for
   :data:`VETO_CATALOGUES` (Hipparcos, VSX, GCVS: stars and variable stars; 3HSP, 4LAC:
   blazars). Counterparts in the galaxy catalogues (Mangrove within 60″, OpenNGC within
   the galaxy's extent) are *not* vetoes: they name a host, and a supernova in a
   catalogued galaxy is exactly a new transient.

Unknown values (null ``mjd``, ``ndethist``, ``flux``, ``sso_flag`` or an empty history)
never select an alert.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from fink_broker.filters.common import (
    AGN_CATALOGUES,
    SSO_KNOWN,
    STAR_CATALOGUES,
    as_mask,
    flag_known_and_not,
    no_counterpart,
    numbers,
    positive_flux,
    xm_id,
)
from fink_broker.plugins import alert_filter

log = logging.getLogger(__name__)

#: largest time since the first detection in the alert history [day]
MAX_AGE_DAYS = 5.0
#: a counterpart in one of these catalogues means the source is already known
VETO_CATALOGUES: tuple[str, ...] = STAR_CATALOGUES + AGN_CATALOGUES


def history_span(mjd: np.ndarray, hist_mjd: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(number of detections in the history, ``mjd`` minus the first of them; NaN if none)."""
    count = np.zeros(len(hist_mjd), dtype=np.int64)
    first = np.full(len(hist_mjd), np.nan)
    for i, times in enumerate(hist_mjd):
        if times is None:
            continue
        values = np.asarray(times, dtype=float)
        values = values[np.isfinite(values)]
        if len(values):
            count[i] = len(values)
            first[i] = values.min()
    return count, mjd - first


@alert_filter(
    name="new_transients",
    version="1.0",
    inputs=["mjd", "flux", "ndethist", "hist_mjd", "sso_flag", *map(xm_id, VETO_CATALOGUES)],
)
def new_transients(df: pd.DataFrame) -> pd.Series:
    """New transients: first seen <= 5 days ago, no star or AGN counterpart, not a known SSO."""
    count, age = history_span(numbers(df["mjd"]), df["hist_mjd"])
    ndethist = numbers(df["ndethist"])
    with np.errstate(invalid="ignore"):
        young = (count > 0) & (age <= MAX_AGE_DAYS)
        never_seen_before = ndethist <= count
    selected = (
        positive_flux(df["flux"])
        & young
        & never_seen_before
        & flag_known_and_not(df["sso_flag"], [SSO_KNOWN])
        & no_counterpart(df, VETO_CATALOGUES)
    )
    log.debug("new_transients: %d of %d alerts", int(selected.sum()), len(df))
    return as_mask(selected, df.index)
