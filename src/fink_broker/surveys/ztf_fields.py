"""ZTF (alert schema 3.3) mapped to the canonical columns, and ZTF's quality cuts.

Why these choices:

* ``mjd = jd - 2400000.5``: ZTF times are UTC-based Julian Dates of the exposure start.
* ``band``: ``fid`` 1/2/3 are ZTF g/r/i.
* ``mag``/``magerr`` are ``magpsf``/``sigmapsf`` as ZTF sends them: the magnitude of the
  absolute difference flux. ``flux`` carries the sign (``isdiffpos`` ``f``/``0`` means the
  science image was fainter than the reference), in nJy like Rubin, so flux-based modules
  treat both surveys alike.
* History: ``prv_candidates`` items with a ``magpsf`` are detections (previous alerts of
  the object, 30 days back); items without are non-detections whose ``diffmaglim`` is the
  5-sigma limit (``uplim_*``). The current candidate is appended to the detections.
* ``ssdistnr``/``ssmagnr``/``distpsnr1`` use -999 and ``ssnamenr`` the string ``"null"``
  for "no value"; both become null.
"""

from __future__ import annotations

from fink_broker.surveys.fields import (
    BandMap,
    Const,
    Cut,
    Epochs,
    Field,
    History,
    MagErrToFluxErr,
    MagToFlux,
    Transform,
    check_table,
)

#: JD of MJD 0
JD_MINUS_MJD = 2400000.5
#: ZTF filter id -> band letter
FID_TO_BAND = {1: "g", 2: "r", 3: "i"}
#: ZTF sentinels for "no value"
NO_VALUE = (-999.0, "null")

#: previous detections (prv_candidates with a magnitude) plus the current candidate
DETECTIONS = Epochs("prv_candidates", time="jd", current_time="candidate.jd", require="magpsf")
#: previous non-detections: prv_candidates without a magnitude (``diffmaglim`` is the limit)
NON_DETECTIONS = Epochs("prv_candidates", time="jd", require_null="magpsf")


def _mjd(path: str) -> Field:
    return Field(path, offset=-JD_MINUS_MJD)


#: canonical column -> transform on a decoded ZTF alert
CANONICAL: dict[str, Transform] = {
    "objectId": Field("objectId"),
    "alertId": Field("candid"),
    "mjd": _mjd("candidate.jd"),
    "ra": Field("candidate.ra"),
    "dec": Field("candidate.dec"),
    "band": BandMap("candidate.fid", FID_TO_BAND),
    "mag": Field("candidate.magpsf"),
    "magerr": Field("candidate.sigmapsf"),
    "flux": MagToFlux("candidate.magpsf", sign="candidate.isdiffpos"),
    "fluxerr": MagErrToFluxErr("candidate.magpsf", "candidate.sigmapsf"),
    "ndethist": Field("candidate.ndethist"),
    "ps1_sgscore": Field("candidate.sgscore1", null_if=NO_VALUE),
    "ps1_distance_arcsec": Field("candidate.distpsnr1", null_if=NO_VALUE),
    "sso_ref_name": Field("candidate.ssnamenr", null_if=NO_VALUE),
    "sso_ref_distance_arcsec": Field("candidate.ssdistnr", null_if=NO_VALUE),
    "sso_ref_mag": Field("candidate.ssmagnr", null_if=NO_VALUE),
    "hist_mjd": History(DETECTIONS, _mjd("jd"), _mjd("candidate.jd")),
    "hist_band": History(
        DETECTIONS, BandMap("fid", FID_TO_BAND), BandMap("candidate.fid", FID_TO_BAND)
    ),
    "hist_mag": History(DETECTIONS, Field("magpsf"), Field("candidate.magpsf")),
    "hist_magerr": History(DETECTIONS, Field("sigmapsf"), Field("candidate.sigmapsf")),
    "hist_flux": History(
        DETECTIONS,
        MagToFlux("magpsf", sign="isdiffpos"),
        MagToFlux("candidate.magpsf", sign="candidate.isdiffpos"),
    ),
    "hist_fluxerr": History(
        DETECTIONS,
        MagErrToFluxErr("magpsf", "sigmapsf"),
        MagErrToFluxErr("candidate.magpsf", "candidate.sigmapsf"),
    ),
    "uplim_mjd": History(NON_DETECTIONS, _mjd("jd")),
    "uplim_band": History(NON_DETECTIONS, BandMap("fid", FID_TO_BAND)),
    "uplim_maglim": History(NON_DETECTIONS, Field("diffmaglim")),
    # ZTF alerts carry no forced photometry (it is a separate, on-demand service)
    "forced_mjd": Const(None),
    "forced_band": Const(None),
    "forced_flux": Const(None),
    "forced_fluxerr": Const(None),
}
check_table(CANONICAL)


def quality_cuts(
    *, nbad_max: int = 0, rb_min: float = 0.55, drop_i_band: bool = True
) -> tuple[Cut, ...]:
    """Fink's ZTF raw2science cuts: no bad pixel, real-bogus >= 0.55, no i band.

    The thresholds are Fink's production values (``bin/ztf/raw2science.py``): i-band alerts
    are rare (partnership programme) and most modules are trained on g and r only.
    """
    cuts = [
        Cut("nbad", "candidate.nbad", "<=", nbad_max, f"bad pixels within 5x5 <= {nbad_max}"),
        Cut("rb", "candidate.rb", ">=", rb_min, f"real/bogus score >= {rb_min}"),
    ]
    if drop_i_band:
        cuts.append(Cut("not_i_band", "candidate.fid", "!=", 3, "i-band alerts are dropped"))
    return tuple(cuts)


#: the default cuts
CUTS: tuple[Cut, ...] = quality_cuts()
