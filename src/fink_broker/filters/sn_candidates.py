"""``sn_candidates``: supernova candidates by Fink's SuperNNova rule (topic Fink's name).

Science case: a supernova caught before or near its peak can still be classified by
spectroscopy and followed in colour and luminosity; most of Fink's community subscribes
for these. Fink publishes them on ``fink_sn_candidates_ztf``; this topic keeps that name.

An alert is selected when the ``finkclass`` module labels it ``SN candidate``: for ZTF,
Fink's own ``sn_candidates`` rule (a SuperNNova SN Ia or SN score above 0.5, an
extragalactic candidate, first seen at most 90 days before, ``drb > 0.5``,
``classtar > 0.4``, not a known asteroid, more than one detection); for Rubin, SuperNNova
and CATS agreeing on a supernova (see ``science/classification.py``). Reading the label
keeps the rule in one place. One difference from Fink's topic follows: an alert that is
also a Fink Solar System candidate is labelled ``Ambiguous`` and is not published here,
where Fink's topic, computed apart from its labels, would publish it.
"""

from __future__ import annotations

import pandas as pd

from fink_broker.filters.common import as_mask
from fink_broker.plugins import alert_filter

#: the finkclass label that selects an alert
LABEL = "SN candidate"


@alert_filter(name="sn_candidates", version="1.0", inputs=["finkclass"])
def sn_candidates(df: pd.DataFrame) -> pd.Series:
    """Supernova candidates (finkclass "SN candidate": SuperNNova, Fink's cuts)."""
    return as_mask((df["finkclass"] == LABEL).to_numpy(dtype=bool, na_value=False), df.index)
