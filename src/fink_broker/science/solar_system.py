"""Solar System flag: is this alert a known asteroid/comet, a candidate, or neither?

The rules are Fink's ``roid_catcher`` (fink-science 7.4.0, ``fink_science/ztf/asteroids/
processor.py``), written over canonical columns so that Rubin runs the same code:

======  =====================================================================================
flag    meaning and rule (applied in this order, later rules override earlier ones)
======  =====================================================================================
1       first detection: ``ndethist == 1``
2       Fink candidate: ``ps1_sgscore < 0.76`` (no stellar PS1 counterpart, Tachibana &
        Miller 2018) and ``ndethist <= 2``
0       reset, not moving: a PS1 source within 5″ (``0 < ps1_distance_arcsec < 5``); or two
        detections more than 30 min apart (``n_detections == 2``); or ``ndethist == 2``
        while the alert history holds one detection
3       known object: a named association (``sso_ref_name`` not null) closer than 5″
        (``0 <= sso_ref_distance_arcsec < 5``, or distance unknown), nearer than the PS1
        source (``|ps1_distance_arcsec| > sso_ref_distance_arcsec``, when both known),
        ``ndethist <= 5`` (when known) and ``n_detections <= 5``
======  =====================================================================================

``n_detections`` is the length of the alert's detection history (Fink's ``nalerthist``).

Deviations from Fink, on purpose:

* flag 3 also requires a name. In ZTF alerts a ``ssdistnr >= 0`` always comes with a
  ``ssnamenr``, so this changes nothing there, and it keeps a name in ``sso_name``.
* the 30-minute test uses the two detections; Fink differences the last two entries of
  ``prv_candidates.jd + [jd]``, which may be a non-detection.
* unknown values (null) never satisfy a condition, except that a Rubin association, whose
  distance or detection count may be absent, is trusted: the Rubin pipeline attributes
  the source to the Solar System object instead of a diaObject.

With those rules Rubin sources associated to an ``ssObject`` get 3, first detections of a
diaObject get 1, and flag 2 never fires for Rubin (no PS1 star/galaxy score in the alert).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from fink_broker.plugins import ColumnSpec, science_module

log = logging.getLogger(__name__)

#: association radius to a known object, and PS1 exclusion radius [arcsec]
MATCH_RADIUS_ARCSEC = 5.0
#: PS1 star/galaxy score above which the nearest PS1 source is a star
STAR_SCORE = 0.76
#: two detections further apart than this are not one moving-object tracklet [day]
TRACKLET_SPAN_DAYS = 30.0 / (24.0 * 60.0)
#: at most this many detections for a known-object flag
MAX_DETECTIONS = 5

OUTPUTS = (
    ColumnSpec(
        "sso_flag", "int", "", "3 known SSO, 2 Fink SSO candidate, 1 first detection, 0 other"
    ),
    ColumnSpec("sso_name", "string", "", "designation of the known SSO when sso_flag == 3"),
    ColumnSpec("sso_distance_arcsec", "double", "arcsec", "distance to that SSO when known"),
    ColumnSpec("sso_mag", "double", "mag", "predicted magnitude of that SSO when known"),
)


def _n_detections(hist_mjd: pd.Series) -> np.ndarray:
    return np.fromiter(
        (0 if h is None else len(h) for h in hist_mjd), dtype=np.int64, count=len(hist_mjd)
    )


def _last_span(hist_mjd: pd.Series) -> np.ndarray:
    """Time between the last two detections (NaN for fewer than two)."""
    out = np.full(len(hist_mjd), np.nan)
    for i, h in enumerate(hist_mjd):
        if h is not None and len(h) >= 2:
            out[i] = float(h[-1]) - float(h[-2])
    return out


def _num(series: pd.Series) -> np.ndarray:
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


@science_module(
    name="solar_system",
    version="1.0",
    inputs=[
        "ndethist",
        "ps1_sgscore",
        "ps1_distance_arcsec",
        "sso_ref_name",
        "sso_ref_distance_arcsec",
        "sso_ref_mag",
        "hist_mjd",
    ],
    outputs=OUTPUTS,
)
def solar_system(df: pd.DataFrame) -> pd.DataFrame:
    """Flag known Solar System objects and Fink SSO candidates (Fink's roid logic)."""
    ndethist = _num(df["ndethist"])
    sgscore = _num(df["ps1_sgscore"])
    ps1_dist = _num(df["ps1_distance_arcsec"])
    ref_dist = _num(df["sso_ref_distance_arcsec"])
    names = df["sso_ref_name"].to_numpy(dtype=object)
    has_name = np.array([isinstance(n, str) and n not in ("", "null") for n in names], dtype=bool)
    n_det = _n_detections(df["hist_mjd"])
    span = _last_span(df["hist_mjd"])

    # comparisons with NaN are False, which is how "unknown never satisfies" is implemented
    with np.errstate(invalid="ignore"):
        flags = np.zeros(len(df), dtype=np.int32)
        flags[ndethist == 1] = 1
        flags[(sgscore < STAR_SCORE) & (ndethist <= 2)] = 2
        near_ps1 = (ps1_dist > 0) & (ps1_dist < MATCH_RADIUS_ARCSEC)
        long_pair = (n_det == 2) & (span > TRACKLET_SPAN_DAYS)
        stale = (ndethist == 2) & (n_det == 1)
        flags[near_ps1 | long_pair | stale] = 0

        dist_ok = np.isnan(ref_dist) | ((ref_dist >= 0) & (ref_dist < MATCH_RADIUS_ARCSEC))
        ps1_ok = np.isnan(ps1_dist) | np.isnan(ref_dist) | ((np.abs(ps1_dist) - ref_dist) > 0)
        few = (np.isnan(ndethist) | (ndethist <= MAX_DETECTIONS)) & (n_det <= MAX_DETECTIONS)
        known = has_name & dist_ok & ps1_ok & few
        flags[known] = 3

    sso_name = np.where(known, names, None)
    distance = np.where(known, ref_dist, np.nan)
    mag = np.where(known, _num(df["sso_ref_mag"]), np.nan)
    log.debug("solar_system: %d alerts, %d known SSO", len(df), int(known.sum()))
    return pd.DataFrame(
        {
            "sso_flag": flags,
            "sso_name": pd.Series(sso_name, index=df.index, dtype=object),
            "sso_distance_arcsec": distance,
            "sso_mag": mag,
        },
        index=df.index,
    )
