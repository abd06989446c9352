"""Rubin (lsst.v9_0 and later) mapped to the canonical columns, and Rubin's quality cuts.

Why these choices:

* ``mjd`` is ``midpointMjdTai`` as is (TAI, mid-exposure): modules compare times within one
  survey, so the 37 s TAI-UTC offset does not matter to them.
* Photometry is the PSF difference flux in nJy; ``mag = -2.5 log10(flux) + 31.4`` and
  ``magerr = 1.0857 * err / flux`` exist only for positive fluxes (null otherwise).
* History = ``prvDiaSources`` (previous detections, 12 months back) plus the current
  ``diaSource``. ``prvDiaForcedSources`` are forced photometry, not limits, so ``uplim_*``
  is null for Rubin; they become the ``forced_*`` arrays (flux and error, nJy) instead.
* ``objectId`` is ``diaObjectId`` as text; the pipeline sets it to 0 when the source is
  attributed to a Solar System object instead, which becomes null here.
* Solar System: the packed MPC designation names the object (v9 ``MPCORB.mpcDesignation``,
  v10+ ``mpc_orbits.packed_primary_provisional_designation``), falling back to the unpacked
  ``ssSource.designation`` and then to the ``ssObjectId``. The distance is the
  observed-minus-ephemeris offset: v9 ``ssSource.residualRa/Dec`` (degrees), v10+
  ``ssSource.ephOffset`` (assumed arcsec: the schema gives no unit). Paths absent from a
  schema version evaluate to null, so one table serves v9 to v11.
  There is no PS1 star/galaxy information in Rubin alerts (``ps1_*`` null).
* ``ndethist`` is ``diaObject.nDiaSources`` (null for Solar System sources).
"""

from __future__ import annotations

from collections.abc import Iterable

from fink_broker.surveys.fields import (
    Coalesce,
    Const,
    Cut,
    Epochs,
    Field,
    FluxErrToMagErr,
    FluxToMag,
    History,
    SkyOffset,
    Transform,
    check_table,
)

#: previous detections plus the current diaSource
DETECTIONS = Epochs("prvDiaSources", time="midpointMjdTai", current_time="diaSource.midpointMjdTai")
#: forced photometry at the object's position on earlier visits (12 months back)
FORCED = Epochs("prvDiaForcedSources", time="midpointMjdTai")


def _src(name: str) -> str:
    return f"diaSource.{name}"


#: canonical column -> transform on a decoded Rubin alert
CANONICAL: dict[str, Transform] = {
    "objectId": Field(_src("diaObjectId"), null_if=(0,), cast="string"),
    "alertId": Field("diaSourceId"),
    "mjd": Field(_src("midpointMjdTai")),
    "ra": Field(_src("ra")),
    "dec": Field(_src("dec")),
    "band": Field(_src("band")),
    "mag": FluxToMag(_src("psfFlux")),
    "magerr": FluxErrToMagErr(_src("psfFlux"), _src("psfFluxErr")),
    "flux": Field(_src("psfFlux")),
    "fluxerr": Field(_src("psfFluxErr")),
    "ndethist": Field("diaObject.nDiaSources"),
    "ps1_sgscore": Const(None),
    "ps1_distance_arcsec": Const(None),
    "sso_ref_name": Coalesce(
        (
            Field("MPCORB.mpcDesignation"),
            Field("mpc_orbits.packed_primary_provisional_designation"),
            Field("ssSource.designation"),
            Field(_src("ssObjectId"), null_if=(0,), cast="string"),
        )
    ),
    "sso_ref_distance_arcsec": Coalesce(
        (
            SkyOffset("ssSource.residualRa", "ssSource.residualDec", _src("dec")),
            Field("ssSource.ephOffset"),
        )
    ),
    "sso_ref_mag": Coalesce((Field("ssSource.predictedVMagnitude"), Field("ssSource.ephVmag"))),
    "hist_mjd": History(DETECTIONS, Field("midpointMjdTai"), Field(_src("midpointMjdTai"))),
    "hist_band": History(DETECTIONS, Field("band"), Field(_src("band"))),
    "hist_mag": History(DETECTIONS, FluxToMag("psfFlux"), FluxToMag(_src("psfFlux"))),
    "hist_magerr": History(
        DETECTIONS,
        FluxErrToMagErr("psfFlux", "psfFluxErr"),
        FluxErrToMagErr(_src("psfFlux"), _src("psfFluxErr")),
    ),
    "hist_flux": History(DETECTIONS, Field("psfFlux"), Field(_src("psfFlux"))),
    "hist_fluxerr": History(DETECTIONS, Field("psfFluxErr"), Field(_src("psfFluxErr"))),
    "uplim_mjd": Const(None),
    "uplim_band": Const(None),
    "uplim_maglim": Const(None),
    "forced_mjd": History(FORCED, Field("midpointMjdTai")),
    "forced_band": History(FORCED, Field("band")),
    "forced_flux": History(FORCED, Field("psfFlux")),
    "forced_fluxerr": History(FORCED, Field("psfFluxErr")),
}
check_table(CANONICAL)

#: diaSource flags that reject an alert by default: a failed measurement, or a bad,
#: saturated, interpolated, off-image, no-data or suspect pixel *at the centre*. Footprint
#: flags (``pixelFlags_cr``, ``pixelFlags_interpolated``, ...) are not used by default:
#: in the 2025 sample they are raised on many high-reliability sources with large
#: footprints, while the centre flags mark measurements that are really compromised.
DEFAULT_REJECT_FLAGS: tuple[str, ...] = (
    "pixelFlags",
    "pixelFlags_bad",
    "pixelFlags_edge",
    "pixelFlags_offimage",
    "pixelFlags_nodataCenter",
    "pixelFlags_saturatedCenter",
    "pixelFlags_interpolatedCenter",
    "pixelFlags_suspectCenter",
    "psfFlux_flag",
    "centroid_flag",
)


def quality_cuts(
    *, reliability_min: float = 0.5, reject_flags: Iterable[str] = DEFAULT_REJECT_FLAGS
) -> tuple[Cut, ...]:
    """Reliability threshold plus one cut per rejecting diaSource flag.

    Fink's own Rubin raw2science applies no cut (the quality gates live in filters); the
    broker offers these as configurable defaults. ``reliability`` is the ML probability that
    the source is astrophysical; 0.5 keeps about half of the 2025 sample.
    """
    cuts = [
        Cut(
            "reliability",
            _src("reliability"),
            ">=",
            reliability_min,
            f"ML reliability >= {reliability_min}",
        )
    ]
    cuts += [Cut(flag, _src(flag), "not_true", None, f"{flag} not set") for flag in reject_flags]
    return tuple(cuts)


#: the default cuts
CUTS: tuple[Cut, ...] = quality_cuts()
