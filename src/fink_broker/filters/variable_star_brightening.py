"""``variable_star_brightening``: catalogued variable stars caught in an unusual bright state.

Science case: outbursts and flares of known variables (dwarf-nova outbursts of cataclysmic
variables, symbiotic-star and young-star (FU Ori / EX Lup) outbursts, flares of M dwarfs
and RS CVn binaries, Mira maxima far above the usual) are short, and the spectroscopy or
multi-band photometry that explains them has to start while they last. The catalogues tell
us *what* the star is; this filter says *when* it is doing something worth a look.

An alert is selected when all of these hold:

1. **a variable-star counterpart**: a VSX or GCVS entry within 1.5″ (``xm_vsx_id`` or
   ``xm_gcvs_id`` not null, :data:`CATALOGUES`).
2. **positive difference flux** (``flux > 0``): the star is brighter than in the template
   (ZTF's ``magpsf`` is the magnitude of ``|flux|``, so the sign must be checked).
3. **a baseline**: at least :data:`MIN_BASELINE_POINTS` = 2 *previous* detections in the
   alert's band (``hist_mjd < mjd``, same ``hist_band``) with positive flux and a finite
   ``hist_mag`` and positive ``hist_magerr``. The baseline is their inverse-variance
   weighted mean magnitude.
4. **brighter than the baseline** by at least :data:`BRIGHTENING_MAG` = 0.5 mag
   (``baseline - mag >= 0.5``), a factor 1.6 in flux: well above the photometric errors of
   detections (at most ~0.2 mag, S/N >= 5) and above the scatter of most low-amplitude variables.

Why previous detections of ``hist_mag`` rather than the ``lc_weighted_mean_<band>`` columns
of ``lc_features``: a filter receives exactly the columns it declares, and those columns
exist for different bands per survey (``g, r`` for ZTF, ``ugrizy`` for Rubin), so reading
them would need one filter per survey; and they include the current detection, which
dilutes the very brightening they would be compared with (with three points, by a third).
The baseline here uses the same points ``lc_features`` uses (positive-flux detections),
minus the current one. Magnitudes of both surveys are difference-image magnitudes, so the
comparison is between difference fluxes, consistently.

Unknown values (null ``mjd``, ``band``, ``mag``, ``flux``, histories) never select an alert.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from fink_broker.filters.common import (
    VARIABLE_STAR_CATALOGUES,
    any_counterpart,
    as_mask,
    numbers,
    positive_flux,
    xm_id,
)
from fink_broker.plugins import alert_filter

log = logging.getLogger(__name__)

#: smallest brightening over the baseline that selects an alert [mag]
BRIGHTENING_MAG = 0.5
#: fewest previous same-band detections that make a baseline
MIN_BASELINE_POINTS = 2
#: a counterpart in one of these catalogues makes the alert a known variable star
CATALOGUES: tuple[str, ...] = VARIABLE_STAR_CATALOGUES

HISTORY = ("hist_mjd", "hist_band", "hist_mag", "hist_magerr", "hist_flux")


def baseline_magnitude(df: pd.DataFrame) -> np.ndarray:
    """Weighted mean magnitude of the previous positive-flux detections in the alert's band.

    NaN when there are fewer than :data:`MIN_BASELINE_POINTS` such detections, or when the
    alert's time, band or history is unknown.
    """
    mjd = numbers(df["mjd"])
    bands = df["band"].to_numpy(dtype=object)
    out = np.full(len(df), np.nan)
    rows = zip(*(df[c].to_numpy(dtype=object) for c in HISTORY), strict=True)
    for i, (times, hist_band, mags, errs, fluxes) in enumerate(rows):
        band = bands[i]
        if not isinstance(band, str) or not np.isfinite(mjd[i]):
            continue
        if any(h is None for h in (times, hist_band, mags, errs, fluxes)):
            continue
        t = np.asarray(times, dtype=float)
        m = np.asarray(mags, dtype=float)
        e = np.asarray(errs, dtype=float)
        f = np.asarray(fluxes, dtype=float)
        with np.errstate(invalid="ignore"):
            usable = (
                (t < mjd[i])
                & (np.asarray(hist_band, dtype=object) == band)
                & (f > 0)
                & np.isfinite(m)
                & (e > 0)
            )
        if usable.sum() < MIN_BASELINE_POINTS:
            continue
        weights = 1.0 / e[usable] ** 2
        out[i] = float(np.sum(weights * m[usable]) / np.sum(weights))
    return out


@alert_filter(
    name="variable_star_brightening",
    version="1.0",
    inputs=["mjd", "band", "mag", "flux", *HISTORY, *map(xm_id, CATALOGUES)],
)
def variable_star_brightening(df: pd.DataFrame) -> pd.Series:
    """Known variable stars (VSX, GCVS) at least 0.5 mag brighter than their recent mean."""
    baseline = baseline_magnitude(df)
    with np.errstate(invalid="ignore"):
        brighter = (baseline - numbers(df["mag"])) >= BRIGHTENING_MAG
    selected = any_counterpart(df, CATALOGUES) & positive_flux(df["flux"]) & brighter
    log.debug("variable_star_brightening: %d of %d alerts", int(selected.sum()), len(df))
    return as_mask(selected, df.index)
