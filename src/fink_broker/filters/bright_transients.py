"""``bright_transients``: transients bright enough for spectroscopy with small telescopes.

Science case: spectroscopic classification is the bottleneck of time-domain astronomy. The
ZTF Bright Transient Survey (Fremling et al. 2020, ApJ 895, 32; Perley et al. 2020, ApJ
904, 35) classifies every transient brighter than 18.5 mag with a robotic low-resolution
spectrograph on a 1.5-2 m telescope; the same limit suits most small follow-up
facilities. This topic hands such observers the alerts worth a spectrum.

An alert is selected when all of these hold:

1. **bright**: ``mag <`` :data:`BRIGHT_MAG` = 18.5. ``mag`` is the canonical AB magnitude
   of the difference flux for both surveys (ZTF ``magpsf``; Rubin ``-2.5 log10(psfFlux /
   nJy) + 31.4``), so one survey-independent threshold applies. It is a statement about the
   sky, not the survey: Rubin, which saturates near 16-17 mag, will publish few of them.
2. **positive difference flux** (``flux > 0``): ZTF's ``magpsf`` is the magnitude of
   ``|flux|``, so a bright *negative* subtraction (a bright variable star at minimum light)
   would otherwise pass. Rubin's ``mag`` is already null for non-positive flux.
3. **not a known star**: no counterpart in Hipparcos (bright stars within 5″), VSX or GCVS
   (variable stars within 1.5″), see :data:`STAR_VETO_CATALOGUES`. Stars brighter than
   18.5 mag are numerous and their variability is not what transient follow-up is for.
   Galaxy and AGN counterparts are kept: a bright supernova in a catalogued galaxy and a
   flaring blazar both deserve a spectrum.
4. **not a known Solar System object** (``sso_flag`` known and not 3): bright asteroids are
   common near opposition and would swamp the topic.

Unknown values (null ``mag``, ``flux`` or ``sso_flag``) never select an alert.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from fink_broker.filters.common import (
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

#: selected when strictly brighter than this AB magnitude (ZTF Bright Transient Survey)
BRIGHT_MAG = 18.5
#: a counterpart in one of these catalogues makes the alert a known star
STAR_VETO_CATALOGUES: tuple[str, ...] = STAR_CATALOGUES


@alert_filter(
    name="bright_transients",
    version="1.0",
    inputs=["mag", "flux", "sso_flag", *map(xm_id, STAR_VETO_CATALOGUES)],
)
def bright_transients(df: pd.DataFrame) -> pd.Series:
    """Bright transients (mag < 18.5, positive flux), not a known star nor a known asteroid."""
    with np.errstate(invalid="ignore"):
        bright = numbers(df["mag"]) < BRIGHT_MAG
    selected = (
        bright
        & positive_flux(df["flux"])
        & no_counterpart(df, STAR_VETO_CATALOGUES)
        & flag_known_and_not(df["sso_flag"], [SSO_KNOWN])
    )
    log.debug("bright_transients: %d of %d alerts", int(selected.sum()), len(df))
    return as_mask(selected, df.index)
