"""One label per alert from the Solar System flag and the catalogue cross-matches.

The archive indexes alerts by this label (``/api/v1/latests?class=...``), so it is a closed
vocabulary (:data:`CLASS_LABELS`) that the API can list. Rules, first match wins; the order
puts the most certain association first:

=========================  ==============================================================
label                      rule
=========================  ==============================================================
``Solar System MPC``       ``sso_flag == 3``: a known asteroid or comet
``Solar System candidate`` ``sso_flag == 2``: Fink's moving-object candidate
``Bright star``            a Hipparcos-2 star within 5″ (a stellar artefact or flare)
``Variable star``          an AAVSO VSX or GCVS variable within 1.5″
``Blazar``                 a 3HSP or Fermi 4LAC-DR3 source within 60″
``NGC/IC object``          inside an OpenNGC object (galaxy, cluster, nebula)
``Galaxy host candidate``  a Mangrove (GLADE) galaxy within 60″
``Unknown``                none of the above: the candidates for new transients
=========================  ==============================================================

It uses no trained model: the built-in catalogues only say what a source *is near*, and
labels say so. Labels never contain ``_``, which separates the parts of archive row keys.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fink_broker.plugins import ColumnSpec, science_module

#: (label, its rule in words), in the order the rules apply
RULES: tuple[tuple[str, str], ...] = (
    ("Solar System MPC", "known asteroid or comet (sso_flag 3)"),
    ("Solar System candidate", "Fink moving-object candidate (sso_flag 2)"),
    ("Bright star", "Hipparcos-2 star within 5 arcsec"),
    ("Variable star", "AAVSO VSX or GCVS variable star within 1.5 arcsec"),
    ("Blazar", "3HSP or Fermi 4LAC-DR3 source within 60 arcsec"),
    ("NGC/IC object", "inside an OpenNGC galaxy, cluster or nebula"),
    ("Galaxy host candidate", "Mangrove (GLADE) galaxy within 60 arcsec"),
    ("Unknown", "no association: a candidate new transient"),
)
#: every label the module can emit
CLASS_LABELS: tuple[str, ...] = tuple(label for label, _ in RULES)


@science_module(
    name="classification",
    version="1.0",
    inputs=[
        "sso_flag",
        "xm_hip_id",
        "xm_vsx_id",
        "xm_gcvs_id",
        "xm_3hsp_id",
        "xm_4lac_id",
        "xm_ongc_id",
        "xm_mangrove_id",
    ],
    outputs=[
        ColumnSpec(
            "fink_class",
            "string",
            "",
            "Fink label from the Solar System flag and cross-matches (see /api/v1/classes)",
        )
    ],
)
def classification(df: pd.DataFrame) -> pd.DataFrame:
    """Label each alert from its Solar System flag and catalogue cross-matches."""

    def matched(*names: str) -> np.ndarray:
        return np.logical_or.reduce([df[n].notna().to_numpy() for n in names])

    sso = pd.to_numeric(df["sso_flag"], errors="coerce").to_numpy(dtype=float)
    conditions = [
        sso == 3,
        sso == 2,
        matched("xm_hip_id"),
        matched("xm_vsx_id", "xm_gcvs_id"),
        matched("xm_3hsp_id", "xm_4lac_id"),
        matched("xm_ongc_id"),
        matched("xm_mangrove_id"),
    ]
    labels = np.select(conditions, CLASS_LABELS[:-1], default=CLASS_LABELS[-1])
    return pd.DataFrame({"fink_class": labels.astype(object)}, index=df.index)
