"""``superluminous``: superluminous-supernova candidates by Fink's SLSN score (Rubin).

Science case: SLSNe are rare (~1 in 1,000 supernovae), bright and slow, and their hosts
and spectra are best caught before the peak; a candidate list early in the rise is what
spectroscopic programmes ask for. Fink's filter (fink-filters ``filter_superluminous``:
``slsn_filter``) selects alerts whose SLSN probability is at least 0.5; the topic follows
Fink's naming, the filter module's name without ``filter_``: ``fink_superluminous_lsst``.

The score is the ``slsn`` module's ``slsn_score`` (fink-science's Rubin forest); alerts
with fewer than 7 points score 0.0 and are never selected.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fink_broker.filters.common import as_mask, numbers
from fink_broker.plugins import alert_filter
from fink_broker.surveys.names import RUBIN_NAME

#: lowest SLSN probability selected (Fink's ``slsn_filter`` threshold)
THRESHOLD = 0.5


@alert_filter(name="superluminous", version="1.0", inputs=["slsn_score"], surveys=[RUBIN_NAME])
def superluminous(df: pd.DataFrame) -> pd.Series:
    """Alerts whose Fink SLSN score (Rubin random forest) is at least 0.5."""
    with np.errstate(invalid="ignore"):
        return as_mask(numbers(df["slsn_score"]) >= THRESHOLD, df.index)
