"""``anomaly_notification``: the alerts Fink's public anomaly model finds most unusual.

Science case: light curves that fit no known class (rare transients, odd variables,
artefacts worth knowing about) are what the SNAD team follows up and labels, and those
labels retrain the forests. Fink's module of that name (fink-filters
``filter_anomaly_notification``) publishes them; its topic,
``fink_anomaly_notification_ztf``, keeps the name.

Fink's own selection is relative: at the end of the night, the 10 lowest
``anomaly_score`` of the night (one alert per object) go to its Telegram and Slack channels
and to its anomaly table. A stream cannot know the night's ten lowest before the night
ends, so this filter uses a fixed cut on the same score: an alert is selected when its
public-model score is scored (not 0.0) and at most :data:`THRESHOLD`. Lower scores are more
anomalous. The threshold is provisional: the 50 real ZTF alerts of 2020-01-01 score between
-0.01657 and -0.01608, and -0.0164 keeps the 5 lowest of them, a tenth;
it should be recalibrated on a full night (Fink publishes ~10 of ~10^5 alerts).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fink_broker.filters.common import as_mask, numbers
from fink_broker.plugins import alert_filter
from fink_broker.surveys.names import ZTF_NAME

#: highest public-model anomaly score selected (provisional, see the module doc)
THRESHOLD = -0.0164


@alert_filter(
    name="anomaly_notification", version="1.0", inputs=["anomaly_score"], surveys=[ZTF_NAME]
)
def anomaly_notification(df: pd.DataFrame) -> pd.Series:
    """Alerts whose Fink anomaly score (SNAD AAD forests) is at most -0.0164."""
    score = numbers(df["anomaly_score"])
    with np.errstate(invalid="ignore"):
        return as_mask((score != 0.0) & (score <= THRESHOLD), df.index)
