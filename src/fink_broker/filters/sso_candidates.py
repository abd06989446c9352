"""``sso_candidates``: Solar System objects, known or candidate.

Science case: asteroids and comets move, so every detection of one is a "transient" in a
difference image. Planetary scientists want all of them (astrometry for orbits, photometry
for rotation periods and phase curves, activity of comets), and every other science case
wants them *out*. One topic gathers what the ``solar_system`` module recognises:

* ``sso_flag == 3`` (:data:`~fink_broker.filters.common.SSO_KNOWN`): the survey associated
  the detection with a catalogued asteroid or comet within 5″ (ZTF ``ssnamenr``, Rubin's
  ``ssSource``): Fink's ``sso_ztf_candidates`` (``roid == 3``);
* ``sso_flag == 2`` (:data:`~fink_broker.filters.common.SSO_CANDIDATE`): Fink's unknown-
  object candidate, no stellar PS1 counterpart within 5″ (``ps1_sgscore < 0.76``) and at
  most two detections that are not 30 min apart: Fink's ``sso_fink_candidates``
  (``roid == 2``). Candidates are meant for tracklet linking and orbit searches; they
  include some genuine new extragalactic transients, which a linker rejects.

Rubin never produces flag 2 (its alerts carry no PS1 score), so there the topic holds the
alerts Rubin itself associated with a known object. A null flag (the module failed on the
batch) selects nothing.
"""

from __future__ import annotations

import logging

import pandas as pd

from fink_broker.filters.common import SSO_CANDIDATE, SSO_KNOWN, as_mask, flag_in
from fink_broker.plugins import alert_filter

log = logging.getLogger(__name__)

#: ``sso_flag`` values that select an alert
SELECTED_FLAGS: tuple[int, ...] = (SSO_CANDIDATE, SSO_KNOWN)


@alert_filter(name="sso_candidates", version="1.0", inputs=["sso_flag"])
def sso_candidates(df: pd.DataFrame) -> pd.Series:
    """Solar System objects: a known asteroid or comet (sso_flag 3) or a Fink candidate (2)."""
    return as_mask(flag_in(df["sso_flag"], SELECTED_FLAGS), df.index)
