"""``finkclass``: one label per alert from the classifiers' scores and the cross-matches.

ZTF follows Fink's ``extract_fink_classification`` (fink-filters 7.45,
``ztf/classification.py``): start from ``Unknown``, let each candidate rule overwrite it in
this order (a later rule wins), call ``Ambiguous`` an alert flagged by more than one of
{SN candidate, Solar System candidate, Solar System MPC}, and finally let a catalogued
identity replace the label, as a SIMBAD counterpart does in Fink:

==========================  =================================================================
label                       rule
==========================  =================================================================
``SN candidate``            ``snn_snia_vs_nonia > 0.5`` or ``snn_sn_vs_all > 0.5``; an
                            extragalactic candidate; ``jd - jdstarthist <= 90``; ``drb > 0.5``;
                            ``classtar > 0.4``; ``sso_flag != 3``; ``ndethist > 1``
                            (Fink's ``sn_candidates``)
``Solar System candidate``  ``sso_flag == 2`` (Fink's ``roid == 2``)
``Solar System MPC``        ``sso_flag == 3`` (Fink's ``roid == 3``)
``Ambiguous``               more than one of the three flags above
``Bright star``             a Hipparcos-2 star within 5″ (SIMBAD's place in Fink)
``Variable star``           an AAVSO VSX or GCVS variable within 1.5″
``Blazar``                  a 3HSP or Fermi 4LAC-DR3 source within 60″
``Unknown``                 none of the above
==========================  =================================================================

Fink's other labels (``Early SN Ia candidate``, ``Kilonova candidate``, ``Microlensing
candidate``, ``Tracklet``) need models or steps this broker does not run (the early SN Ia
and kilonova random forests need ``actsnfink`` and ``kndetect``, microlensing needs Fink's
LIA fork: none is on PyPI; tracklets are found when a night is merged), so they are never
given. SIMBAD itself is not reachable offline: the local catalogues stand in for it, and
the "extragalactic candidate" cut is :func:`~fink_broker.science.counterparts.
extragalactic_candidate`. Host associations (OpenNGC, Mangrove) are not labels: they name
where a transient is, not what it is (two novae in M31 were labelled "NGC/IC object").

Rubin has no text classification in Fink (its pipeline keeps CATS's class and SIMBAD's
type side by side); the broker applies the same order with ``SN candidate`` =
``snnSnVsOthers_score > 0.5`` and CATS's class 11 (SN-like): both of Fink's Rubin
classifiers agree, on an extragalactic candidate that is not a known Solar System object.

The archive indexes alerts by this label (``/api/v1/latests?class=...``), so it is a
closed vocabulary (:data:`CLASS_LABELS`); labels never contain ``_``, which separates the
parts of archive row keys.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fink_broker.plugins import ColumnSpec, science_module
from fink_broker.science.counterparts import (
    AGN_CATALOGUES,
    EXTRAGALACTIC_INPUTS,
    VARIABLE_STAR_CATALOGUES,
    any_counterpart,
    extragalactic_candidate,
)
from fink_broker.surveys.names import RUBIN_NAME, ZTF_NAME

#: (label, its rule in words), in the order the rules apply (a later one wins)
RULES: tuple[tuple[str, str], ...] = (
    ("Unknown", "no classifier flag and no catalogued identity"),
    ("SN candidate", "SuperNNova SN or SN Ia score > 0.5 on a young extragalactic candidate"),
    ("Solar System candidate", "Fink moving-object candidate (sso_flag 2)"),
    ("Solar System MPC", "known asteroid or comet (sso_flag 3)"),
    ("Ambiguous", "more than one of SN candidate, Solar System candidate, Solar System MPC"),
    ("Blazar", "3HSP or Fermi 4LAC-DR3 source within 60 arcsec"),
    ("Variable star", "AAVSO VSX or GCVS variable star within 1.5 arcsec"),
    ("Bright star", "Hipparcos-2 star within 5 arcsec"),
)
#: every label the modules can emit
CLASS_LABELS: tuple[str, ...] = tuple(label for label, _ in RULES)
#: thresholds of Fink's SN candidates
SCORE_MIN, DRB_MIN, CLASSTAR_MIN, MAX_AGE_DAYS = 0.5, 0.5, 0.4, 90.0
#: CATS's code of its SN-like class
CATS_SN_LIKE = 11
JD_MINUS_MJD = 2400000.5

OUTPUT = ColumnSpec(
    "finkclass", "string", "", "Fink label from the scores and cross-matches (/api/v1/classes)"
)


def _num(series: pd.Series) -> np.ndarray:
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def label(df: pd.DataFrame, sn_candidate: np.ndarray) -> pd.DataFrame:
    """Fink's order of the rules, given which alerts are SN candidates."""
    sso = _num(df["sso_flag"])
    flags = {
        "SN candidate": sn_candidate,
        "Solar System candidate": sso == 2,
        "Solar System MPC": sso == 3,
    }
    out = np.full(len(df), "Unknown", dtype=object)
    for name, flag in flags.items():
        out[flag] = name
    out[np.sum(list(flags.values()), axis=0) > 1] = "Ambiguous"
    for name, catalogues in (
        ("Blazar", AGN_CATALOGUES),
        ("Variable star", VARIABLE_STAR_CATALOGUES),
        ("Bright star", ("hip",)),
    ):
        out[any_counterpart(df, catalogues)] = name
    return pd.DataFrame({OUTPUT.name: out}, index=df.index)


@science_module(
    name="finkclass_ztf",
    version="2.0",
    inputs=[
        "mjd",
        "ndethist",
        "sso_flag",
        "snn_snia_vs_nonia",
        "snn_sn_vs_all",
        "candidate.jdstarthist",
        "candidate.drb",
        "candidate.classtar",
        *EXTRAGALACTIC_INPUTS,
    ],
    outputs=[OUTPUT],
    surveys=[ZTF_NAME],
)
def finkclass_ztf(df: pd.DataFrame) -> pd.DataFrame:
    """Fink's classification of ZTF alerts (scores, Solar System flag, catalogues)."""
    with np.errstate(invalid="ignore"):
        sn = (
            ((_num(df["snn_snia_vs_nonia"]) > SCORE_MIN) | (_num(df["snn_sn_vs_all"]) > SCORE_MIN))
            & extragalactic_candidate(df)
            & (_num(df["mjd"]) + JD_MINUS_MJD - _num(df["candidate.jdstarthist"]) <= MAX_AGE_DAYS)
            & (_num(df["candidate.drb"]) > DRB_MIN)
            & (_num(df["candidate.classtar"]) > CLASSTAR_MIN)
            & (_num(df["sso_flag"]) != 3)
            & (_num(df["ndethist"]) > 1)
        )
    return label(df, sn)


@science_module(
    name="finkclass_rubin",
    version="2.0",
    inputs=["sso_flag", "snnSnVsOthers_score", "cats_class", *EXTRAGALACTIC_INPUTS],
    outputs=[OUTPUT],
    surveys=[RUBIN_NAME],
)
def finkclass_rubin(df: pd.DataFrame) -> pd.DataFrame:
    """Fink's classification order on Rubin alerts (SuperNNova and CATS agree on a SN)."""
    with np.errstate(invalid="ignore"):
        sn = (
            (_num(df["snnSnVsOthers_score"]) > SCORE_MIN)
            & (_num(df["cats_class"]) == CATS_SN_LIKE)
            & extragalactic_candidate(df)
            & (_num(df["sso_flag"]) != 3)
        )
    return label(df, sn)
