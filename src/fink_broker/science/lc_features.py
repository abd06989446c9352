"""Per-band light-curve features of the alert history, with SNAD's ``light-curve`` package.

Columns are ``lc_<feature>_<band>``. The band list is part of the contract, so there is one
module per survey: ``lc_features_ztf`` (g, r; the i band is removed by the ZTF cuts) and
``lc_features_rubin`` (u, g, r, i, z, y).

Inputs are the canonical history arrays, so both surveys are treated alike:

* magnitude features (amplitude, mean, spread, variability indices, linear trend) use
  ``hist_mag``/``hist_magerr`` of detections with a *positive* difference flux. For ZTF
  that drops ``isdiffpos = f`` detections; for Rubin it drops negative-flux sources, whose
  magnitude is undefined. Magnitudes make the trend (mag/day) comparable between surveys.
* the Bazin fit uses ``hist_flux``/``hist_fluxerr`` (nJy, signed), because the Bazin model
  is a flux model (rise/decline of a transient above a baseline).

Null rules: a band with fewer than :data:`MIN_POINTS` usable points gets null magnitude
features; the Bazin fit needs :data:`MIN_BAZIN_POINTS` points (light-curve's minimum for 5
parameters is 6). A fit that fails to converge also gives null (light-curve's
``fill_value``). Repeated times within a band keep the first point, because light-curve
requires strictly increasing times. ``lc_npoints_<band>`` counts the magnitude points and
is never null.

How they differ from Fink's ZTF light-curve features (fink-science 7.4.0
``ztf/ad_features``, the inputs of its anomaly score), so that neither is read for the
other:

* Fink switches a light curve to *total* (DC) magnitudes, the reference source plus the
  signed difference flux (``fink_utils`` ``vect_dc_mag`` of ``magpsf``, ``magnr``,
  ``isdiffpos``), as soon as one of its detections lies within 1.5 pixel of a reference
  source (``distnr``; ``is_source_behind``); that is the case for most alerts on stars and
  galaxy nuclei. These features are always on *difference* magnitudes: the amplitude and
  the trend of a variable star differ, and the mean magnitude is of another quantity.
* Fink keeps negative subtractions (``isdiffpos = f``, the magnitude of ``|flux|``, or
  their DC magnitude); these features drop them.
* Fink's extractor combines 22 light-curve extractors (mean, median, inter-percentile
  range, magnitude-percentage ratios, Cusum, maximum slope, ...) and no fit; these are the
  9 magnitude features and the Bazin fit below, and Fink asks for no minimum of points.
* Repeated times: Fink's extractor rejects the light curve (unsorted or repeated times
  raise), here the first point is kept.

The batch's histories are flattened, filtered, sorted and grouped by (alert, band) with
numpy, and each extractor runs once per batch through ``.many`` (the Rust core loops over
the light curves); the only per-(alert, band) Python is building the list of small arrays
handed to light-curve.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import light_curve as lc
import numpy as np
import pandas as pd

from fink_broker.plugins import ColumnSpec, ScienceModule, science_module
from fink_broker.surveys.names import RUBIN_NAME, ZTF_NAME

log = logging.getLogger(__name__)

VERSION = "1.0"
#: fewest points for the magnitude features (LinearFit needs 3)
MIN_POINTS = 3
#: fewest points for the Bazin fit (5 parameters + 1 degree of freedom)
MIN_BAZIN_POINTS = 6

#: (feature, light-curve name, unit, description) of the magnitude extractor, in order
MAG_FEATURES: tuple[tuple[str, str, str, str], ...] = (
    ("amplitude", "amplitude", "mag", "half the max-min magnitude range"),
    ("weighted_mean", "weighted_mean", "mag", "inverse-variance weighted mean magnitude"),
    ("std", "standard_deviation", "mag", "standard deviation of the magnitudes"),
    ("beyond_1std", "beyond_1_std", "", "fraction of points beyond 1 sigma of the mean"),
    ("stetson_k", "stetson_K", "", "Stetson K kurtosis index"),
    ("chi2", "chi2", "", "reduced chi2 of a constant (weighted-mean) model"),
    ("linear_slope", "linear_fit_slope", "mag/d", "slope of a weighted linear fit"),
    ("linear_slope_sigma", "linear_fit_slope_sigma", "mag/d", "error of that slope"),
    ("linear_chi2", "linear_fit_reduced_chi2", "", "reduced chi2 of the linear fit"),
)
#: the Bazin fit parameters on flux
BAZIN_FEATURES: tuple[tuple[str, str, str, str], ...] = (
    ("bazin_amplitude", "bazin_fit_amplitude", "nJy", "Bazin fit amplitude"),
    ("bazin_baseline", "bazin_fit_baseline", "nJy", "Bazin fit baseline flux"),
    ("bazin_t0", "bazin_fit_reference_time", "d", "Bazin fit reference time (MJD)"),
    ("bazin_rise", "bazin_fit_rise_time", "d", "Bazin fit rise time"),
    ("bazin_fall", "bazin_fit_fall_time", "d", "Bazin fit fall time"),
    ("bazin_chi2", "bazin_fit_reduced_chi2", "", "reduced chi2 of the Bazin fit"),
)

ZTF_BANDS = ("g", "r")
RUBIN_BANDS = ("u", "g", "r", "i", "z", "y")
INPUTS = ("hist_mjd", "hist_band", "hist_mag", "hist_magerr", "hist_flux", "hist_fluxerr")


def mag_extractor() -> lc.Extractor:
    """The magnitude-feature extractor (output order = :data:`MAG_FEATURES`)."""
    return lc.Extractor(
        lc.Amplitude(),
        lc.WeightedMean(),
        lc.StandardDeviation(),
        lc.BeyondNStd(1.0),
        lc.StetsonK(),
        lc.ReducedChi2(),
        lc.LinearFit(),
    )


def bazin_extractor() -> lc.BazinFit:
    """The flux Bazin fit (output order = :data:`BAZIN_FEATURES`)."""
    return lc.BazinFit("lmsder")


def _check_names() -> None:
    """The declared feature order must be light-curve's output order (fail at import)."""
    for features, extractor in (
        (MAG_FEATURES, mag_extractor()),
        (BAZIN_FEATURES, bazin_extractor()),
    ):
        if list(extractor.names) != [f[1] for f in features]:
            raise RuntimeError(f"light-curve outputs {extractor.names}, declared {features}")


_check_names()


def output_columns(bands: Sequence[str]) -> tuple[ColumnSpec, ...]:
    """Declared columns for ``bands``: npoints, then magnitude and Bazin features per band."""
    out = []
    for band in bands:
        out.append(
            ColumnSpec(f"lc_npoints_{band}", "int", "", f"positive-flux detections in {band}")
        )
        for feature, _, unit, text in (*MAG_FEATURES, *BAZIN_FEATURES):
            out.append(ColumnSpec(f"lc_{feature}_{band}", "double", unit, f"{text} ({band} band)"))
    return tuple(out)


def _flatten(column: pd.Series, lengths: np.ndarray, dtype: type) -> np.ndarray:
    """One array with every alert's history values, alert after alert."""
    parts = [np.asarray(v, dtype=dtype) for v, k in zip(column, lengths, strict=True) if k]
    return np.concatenate(parts) if parts else np.empty(0, dtype=dtype)


def _lengths(df: pd.DataFrame) -> np.ndarray:
    """History length per alert; 0 for a null history or arrays of unequal lengths."""
    sizes = np.array(
        [[-1 if v is None else len(v) for v in df[c]] for c in INPUTS], dtype=np.int64
    ).reshape(len(INPUTS), len(df))
    same = (sizes == sizes[0]).all(axis=0) & (sizes[0] >= 0)
    if not same.all():
        log.warning("lc_features: %d alerts with null or misaligned histories", int((~same).sum()))
    return np.where(same, sizes[0], 0)


class _Points:
    """The batch's history points of chosen bands, grouped by (alert, band), time-sorted.

    Repeated times within a group keep their first point (light-curve needs strictly
    increasing times); ``groups`` are (alert, band index, start, stop) of each group.
    """

    def __init__(self, alert: np.ndarray, band: np.ndarray, t: np.ndarray, v: np.ndarray,
                 e: np.ndarray, keep: np.ndarray) -> None:  # fmt: skip
        alert, band, t, v, e = alert[keep], band[keep], t[keep], v[keep], e[keep]
        order = np.lexsort((t, band, alert))  # stable: equal times stay in history order
        alert, band, t, v, e = alert[order], band[order], t[order], v[order], e[order]
        new = np.ones(len(t), dtype=bool)
        new[1:] = (alert[1:] != alert[:-1]) | (band[1:] != band[:-1]) | (t[1:] != t[:-1])
        self.alert, self.band, self.t, self.v, self.e = (x[new] for x in (alert, band, t, v, e))
        if len(self.t) == 0:
            self.groups = np.empty((0, 4), dtype=np.int64)
            return
        starts = np.flatnonzero(
            np.r_[True, (self.alert[1:] != self.alert[:-1]) | (self.band[1:] != self.band[:-1])]
        )
        stops = np.r_[starts[1:], len(self.t)]
        self.groups = np.stack([self.alert[starts], self.band[starts], starts, stops], axis=1)

    def series(self, min_points: int) -> tuple[np.ndarray, list[tuple[np.ndarray, ...]]]:
        """Groups with at least ``min_points`` points: their rows, and (t, value, error)."""
        long = self.groups[self.groups[:, 3] - self.groups[:, 2] >= min_points]
        # copies, not views: light-curve 0.13 is ~60x slower on views into a large array
        return long, [
            (self.t[a:b].copy(), self.v[a:b].copy(), self.e[a:b].copy()) for _, _, a, b in long
        ]


def _extract(
    extractor: lc.Extractor | lc.BazinFit, series: list[tuple[np.ndarray, ...]], width: int
) -> np.ndarray:
    if not series:
        return np.empty((0, width))
    return np.asarray(
        extractor.many(series, fill_value=np.nan, sorted=True, check=False, n_jobs=1),
        dtype=np.float64,
    )


def compute(df: pd.DataFrame, bands: Sequence[str]) -> pd.DataFrame:
    """The feature columns of ``bands`` for a frame of canonical histories.

    The histories of the whole batch are flattened into arrays, filtered, sorted and
    grouped by (alert, band) with numpy; only the hand-over to light-curve is per group.
    """
    n, nb = len(df), len(bands)
    lengths = _lengths(df)
    alert = np.repeat(np.arange(n), lengths)
    band = pd.Index(bands).get_indexer(_flatten(df["hist_band"], lengths, object))
    t = _flatten(df["hist_mjd"], lengths, np.float64)
    mag, magerr = (_flatten(df[c], lengths, np.float64) for c in ("hist_mag", "hist_magerr"))
    flux, fluxerr = (_flatten(df[c], lengths, np.float64) for c in ("hist_flux", "hist_fluxerr"))
    with np.errstate(invalid="ignore"):
        usable = (band >= 0) & np.isfinite(t)
        mag_ok = usable & np.isfinite(mag) & np.isfinite(magerr) & (magerr > 0) & (flux > 0)
        flux_ok = usable & np.isfinite(flux) & np.isfinite(fluxerr) & (fluxerr > 0)
    mag_points = _Points(alert, band, t, mag, magerr, mag_ok)
    flux_points = _Points(alert, band, t, flux, fluxerr, flux_ok)

    npoints = np.zeros((n, nb), dtype=np.int32)
    groups = mag_points.groups
    npoints[groups[:, 0], groups[:, 1]] = groups[:, 3] - groups[:, 2]
    tables = {}
    for features, extractor, points, minimum in (
        (MAG_FEATURES, mag_extractor(), mag_points, MIN_POINTS),
        (BAZIN_FEATURES, bazin_extractor(), flux_points, MIN_BAZIN_POINTS),
    ):
        rows, series = points.series(minimum)
        values = np.full((n, nb, len(features)), np.nan)
        values[rows[:, 0], rows[:, 1]] = _extract(extractor, series, len(features))
        tables[features] = values
    columns: dict[str, np.ndarray] = {}
    for b, name in enumerate(bands):
        columns[f"lc_npoints_{name}"] = npoints[:, b]
        for features, values in tables.items():
            for j, (feature, *_rest) in enumerate(features):
                columns[f"lc_{feature}_{name}"] = values[:, b, j]
    return pd.DataFrame(columns, index=df.index)


def make_lc_module(name: str, bands: Sequence[str], surveys: Sequence[str]) -> ScienceModule:
    """A light-curve feature module for ``bands`` of ``surveys``."""
    bands = tuple(bands)

    def lc_features(df: pd.DataFrame) -> pd.DataFrame:
        return compute(df, bands)

    return science_module(
        name=name,
        version=VERSION,
        inputs=INPUTS,
        outputs=output_columns(bands),
        surveys=surveys,
        description=(
            f"Per-band light-curve features ({', '.join(bands)}): magnitude statistics, "
            "linear trend and a Bazin fit on flux, with SNAD light-curve."
        ),
    )(lc_features)


lc_features_ztf = make_lc_module("lc_features_ztf", ZTF_BANDS, (ZTF_NAME,))
lc_features_rubin = make_lc_module("lc_features_rubin", RUBIN_BANDS, (RUBIN_NAME,))
